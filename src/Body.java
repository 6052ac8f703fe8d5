/**
 * How a message body is delimited: decided once per message, by
 * {@link HttpParser#requestBody} and {@link HttpParser#responseBody} following RFC 9112
 * section 6.3, and never re-decided. The proxy regenerates the framing headers of what it
 * forwards from this value; a received Content-Length or Transfer-Encoding line is never
 * copied through.
 */
sealed interface Body {
    /** No body at all: GET without Content-Length, HEAD/204/304 responses, 1xx. */
    record Empty() implements Body {}

    /** Exactly this many bytes (Content-Length). */
    record Length(long bytes) implements Body {}

    /** A sequence of chunks ending with a zero-size chunk and trailers (RFC 9112 7.1). */
    record Chunked() implements Body {}

    /** Everything until the sender closes the connection: responses only (RFC 9112 6.3 rule 8). */
    record UntilClose() implements Body {}

    Body EMPTY = new Empty();
    Body CHUNKED = new Chunked();
    Body UNTIL_CLOSE = new UntilClose();

    static Body ofLength(long bytes) {
        return new Length(bytes);
    }

    /** True if no body bytes follow: Empty, or "Content-Length: 0" (which is still sent on). */
    default boolean isEmpty() {
        return this instanceof Empty || this instanceof Length l && l.bytes() == 0;
    }
}
