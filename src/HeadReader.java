import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * Reads the lines of a message off a {@link Wire}: whole heads (the start line and the
 * field lines, RFC 9112 section 2.1), and the single lines of a chunked body (chunk sizes,
 * trailer fields). It enforces RFC 9112's line syntax as it scans, every line ending in
 * CRLF (a bare CR or LF is an error, section 2.2), and the size limits, so that no parser
 * ever sees an unbounded or ambiguous line. What the lines say is {@link HttpParser}'s
 * business.
 */
final class HeadReader {
    private HeadReader() {}

    /** The limits for one kind of head, and the status to answer when one is exceeded. */
    record Limits(boolean request, int firstLine, int firstLineStatus, int total, int totalStatus) {
        /** A response head over {@link Config#MAX_RESPONSE_HEAD} is the upstream's fault: 502. */
        static final Limits RESPONSE = new Limits(false, Config.MAX_RESPONSE_HEAD, 502, Config.MAX_RESPONSE_HEAD, 502);

        /**
         * A request line over max_request_line is 414 (RFC 9110 15.5.15); a head over
         * max_header_size is 431 (RFC 6585 5). Built here, once, so that the tests read heads
         * with the very limits the proxy uses.
         */
        static Limits request(Config config) {
            return new Limits(true, config.maxRequestLine(), 414, config.maxHeaderSize(), 431);
        }

        /** The status for a malformed head: the client's fault (400) or the upstream's (502). */
        int badStatus() {
            return request ? 400 : 502;
        }
    }

    /**
     * Reads one message head: the start line and the field lines, up to and including the
     * empty line that ends it (RFC 9112 section 2.1). Returns null if the peer closed the
     * connection cleanly before sending a byte.
     */
    static byte[] readHead(Wire wire, Limits limits) throws IOException, HttpError {
        ByteBuffer in = wire.in;
        int scanned = 0;      // bytes after in.position() already checked
        int lineStart = 0;    // where the current line starts, relative to in.position()
        boolean firstLine = true;
        while (true) {
            byte[] a = in.array(); // scanned directly: this loop sees every byte of every head
            int base = in.arrayOffset() + in.position();
            for (; scanned < in.remaining(); scanned++) {
                if (scanned >= limits.total()) {
                    throw HttpError.bad(limits.totalStatus(), "head too large");
                }
                byte b = a[base + scanned];
                boolean afterCR = scanned > lineStart && a[base + scanned - 1] == '\r';
                if (b == '\n') {
                    if (!afterCR) throw HttpError.bad(limits.badStatus(), "bare LF in message head");
                    int length = scanned - 1 - lineStart;
                    if (length == 0 && firstLine && limits.request) {
                        // RFC 9112 2.2: ignore empty lines received before the request-line.
                        in.position(in.position() + scanned + 1);
                        base = in.arrayOffset() + in.position();
                        scanned = -1;
                        continue;
                    }
                    if (length == 0) {
                        if (firstLine) throw HttpError.bad(limits.badStatus(), "empty start line");
                        byte[] head = new byte[scanned + 1];
                        in.get(head);
                        return head;
                    }
                    firstLine = false;
                    lineStart = scanned + 1;
                } else if (afterCR) {
                    throw HttpError.bad(limits.badStatus(), "bare CR in message head");
                } else if (firstLine && limits.request && b != ' ' && b != '\r' && (b < 0x21 || b > 0x7e)) {
                    // A request-line is printable ASCII (RFC 9112 3): fail fast on binary input
                    // such as a TLS ClientHello instead of waiting for a line end.
                    throw HttpError.bad(400, "invalid byte in request line");
                }
                if (firstLine && scanned - lineStart > limits.firstLine()) {
                    throw HttpError.bad(limits.firstLineStatus(), "start line too long");
                }
            }
            boolean nothingYet = scanned == 0;
            if (!wire.fill()) {
                if (nothingYet) return null;
                throw HttpError.bad(limits.badStatus(), "connection closed inside the message head");
            }
            in = wire.in; // fill may have grown it
        }
    }

    /** Reads one CRLF-terminated line of at most {@code limit} bytes, without the CRLF. */
    static String readLine(Wire wire, int limit) throws IOException, HttpError {
        ByteBuffer in = wire.in;
        int scanned = 0;
        while (true) {
            for (; scanned < in.remaining(); scanned++) {
                byte b = in.get(in.position() + scanned);
                boolean afterCR = scanned > 0 && in.get(in.position() + scanned - 1) == '\r';
                if (b == '\n') {
                    if (!afterCR) throw HttpError.bad(400, "bare LF");
                    String line = new String(in.array(), in.arrayOffset() + in.position(), scanned - 1,
                            StandardCharsets.ISO_8859_1);
                    in.position(in.position() + scanned + 1);
                    return line;
                }
                if (afterCR) throw HttpError.bad(400, "bare CR");
                if (scanned > limit) throw HttpError.bad(400, "line too long"); // the CR may follow `limit` bytes
            }
            if (!wire.fill()) throw new EOFException("connection closed inside a line");
            in = wire.in; // fill may have grown it
        }
    }
}
