import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.function.LongConsumer;

/**
 * Streams one message body from one wire to another, as it arrives: a piece is read into a
 * bounded buffer and written out before the next is read, so a body is never collected
 * whole, and a slow or endless stream (server-sent events) reaches the receiver live.
 *
 * <p>The body is re-framed on the way: a chunked body is decoded strictly (RFC 9112 7.1)
 * and each piece re-encoded as a chunk of our own, or written raw for an HTTP/1.0 client.
 * Chunk extensions and trailers are checked and dropped.
 *
 * <p>The message head waits to go out with the first piece of the body when that piece is
 * already in memory: one write instead of two. When the body has yet to arrive, the head
 * goes out alone first, so the receiver never waits on it.
 */
final class Relay {
    /** Reading the body failed (peer closed early, reset, or timed out). */
    static final class ReadFailed extends IOException {
        ReadFailed(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Writing the body failed: the receiver is gone or too slow. */
    static final class WriteFailed extends IOException {
        WriteFailed(IOException cause) {
            super(cause.getMessage(), cause);
        }
    }

    private Relay() {}

    /**
     * Copies the body framed as {@code in} from {@code from} to {@code to}, framed as
     * {@code out}, writing {@code head} before it. Stops with 413 once more than
     * {@code limit} bytes have come (0 = no limit).
     */
    static void copy(Wire from, Body in, Wire to, Body out, ByteBuffer head, long limit, BufferPool pool)
            throws IOException, HttpError {
        copy(from, in, to, out, head, limit, pool, null, n -> {});
    }

    /**
     * The same, the body compressed on its way out by {@code gzip} unless it is null
     * ({@link Gzip}), and {@code sent} told the body bytes written so far after each write
     * (compressed, if they were; without chunk framing): what went out of a body cut short.
     */
    static void copy(Wire from, Body in, Wire to, Body out, ByteBuffer head, long limit, BufferPool pool,
                     Gzip.Encoder gzip, LongConsumer sent) throws IOException, HttpError {
        Sink sink = new Sink(to, out instanceof Body.Chunked, head, gzip, sent);
        try (Source source = new Source(from, sink, pool)) {
            switch (in) {
                case Body.Empty e -> { }
                case Body.Length length -> copyLength(source, length.bytes(), sink);
                case Body.Chunked c -> copyChunked(source, sink, limit);
                case Body.UntilClose u -> copyUntilClose(source, sink);
            }
            sink.finish();
        }
    }

    private static void copyLength(Source source, long length, Sink sink) throws IOException {
        for (long left = length; left > 0; ) {
            ByteBuffer piece = source.next(left);
            if (!piece.hasRemaining()) throw new ReadFailed("connection closed " + left + " bytes before the end of the body", null);
            left -= piece.remaining();
            sink.write(piece);
        }
    }

    private static void copyUntilClose(Source source, Sink sink) throws IOException {
        for (ByteBuffer piece; (piece = source.next(Long.MAX_VALUE)).hasRemaining(); ) sink.write(piece);
    }

    /** chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 7.1). */
    private static void copyChunked(Source source, Sink sink, long limit) throws IOException, HttpError {
        long copied = 0;
        while (true) {
            long size = chunkSize(source.line(Config.MAX_CHUNK_LINE));
            if (size == 0) break;
            copied += size;
            if (limit > 0 && copied > limit) throw HttpError.bad(413, "chunked body over client_max_body_size");
            for (long left = size; left > 0; ) {
                ByteBuffer piece = source.next(left);
                if (!piece.hasRemaining()) throw new ReadFailed("connection closed inside a chunk", null);
                left -= piece.remaining();
                sink.write(piece);
            }
            // The data must be followed by CRLF at once: "5\r\nhello!!\r\n" is an error.
            if (!source.line(0).isEmpty()) throw HttpError.bad(400, "chunk data longer than its size");
        }
        // trailer-section: field lines up to an empty line. Checked, bounded, dropped:
        // trailers are never merged into the head (RFC 9112 7.1.2).
        int trailerBytes = 0;
        for (String line; !(line = source.line(Config.MAX_CHUNK_LINE)).isEmpty(); ) {
            trailerBytes += line.length() + 2;
            if (trailerBytes > Config.MAX_TRAILER_SECTION) throw HttpError.bad(400, "trailer section too large");
            HttpParser.checkTrailerLine(line, 400);
        }
    }

    /**
     * chunk-size [ chunk-ext ], where chunk-size = 1*HEXDIG and
     * chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-value ] ) (RFC 9112 7.1.1).
     */
    static long chunkSize(String line) throws HttpError {
        int digits = 0;
        while (digits < line.length() && HttpParser.isHex(line.charAt(digits))) digits++;
        if (digits == 0) throw HttpError.bad(400, "invalid chunk size");
        if (digits > 15) throw HttpError.bad(400, "chunk size too large"); // no overflow past 2^60
        long size = Long.parseLong(line, 0, digits, 16);
        int i = digits;
        while (i < line.length()) {
            int start = i;
            i = skipBws(line, i);
            if (i == line.length() && i > start) throw HttpError.bad(400, "whitespace after chunk size");
            if (i == line.length()) break;
            if (line.charAt(i) != ';') throw HttpError.bad(400, "invalid chunk extension");
            i = skipBws(line, i + 1);
            int nameEnd = tokenEnd(line, i);
            if (nameEnd == i) throw HttpError.bad(400, "empty chunk extension name");
            i = skipBws(line, nameEnd);
            if (i < line.length() && line.charAt(i) == '=') {
                i = skipBws(line, i + 1);
                int valueEnd = i < line.length() && line.charAt(i) == '"' ? quotedStringEnd(line, i) : tokenEnd(line, i);
                if (valueEnd == i) throw HttpError.bad(400, "invalid chunk extension value");
                i = valueEnd;
            }
        }
        return size;
    }

    private static int skipBws(String s, int i) {
        while (i < s.length() && (s.charAt(i) == ' ' || s.charAt(i) == '\t')) i++;
        return i;
    }

    private static int tokenEnd(String s, int i) {
        int end = i;
        while (end < s.length() && HttpParser.isToken(s.substring(end, end + 1))) end++;
        return end;
    }

    /** quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 5.6.4); returns its end or i. */
    private static int quotedStringEnd(String s, int i) {
        for (int j = i + 1; j < s.length(); j++) {
            char c = s.charAt(j);
            if (c == '"') return j + 1;
            if (c == '\\') j++;
            else if (c < 0x20 && c != '\t' || c == 0x7f) return i;
        }
        return i;
    }

    /**
     * Where pieces come from: the wire's buffered bytes first, then its channel.
     *
     * <p>A read into a pooled buffer that doesn't fill it took all the peer had sent: the
     * next read may park this thread, holding the buffer, for as long as the peer dawdles
     * (up to client_body_timeout or read_timeout), be it a trickle or a burst and a pause.
     * So the buffer goes back to the pool first, and the wait happens on the wire's own
     * small read buffer; once that small read is filled (bytes are queued again), a pooled
     * buffer is taken again. A pooled buffer is thus held only while reads fill it, and a
     * flood of slow clients holds none: it can make only itself slow.
     */
    private static final class Source implements AutoCloseable {
        private final Wire from;
        private final Sink sink;
        private final BufferPool pool;
        private ByteBuffer buffer; // lent by the pool while data flows; null while it trickles
        private boolean trickling; // the last read took all there was: the next may wait
        private boolean filled;    // the last read filled its buffer: a fast, long body
        private boolean wantLarge; // the body is known to be large, or kept filling a small buffer

        Source(Wire from, Sink sink, BufferPool pool) {
            this.from = from;
            this.sink = sink;
            this.pool = pool;
        }

        /** The next piece of at most {@code max} bytes; an empty buffer at end of stream. */
        ByteBuffer next(long max) throws IOException {
            if (from.in.hasRemaining()) return from.takeBuffered(max);
            sink.flushHead(); // about to wait: let the receiver have the head now
            if (!trickling && buffer == null) buffer = wantLarge ? takeLarge(max) : pool.take(max);
            if (trickling || buffer == null) return trickle(max); // also when the budget is spent
            if (filled && buffer.capacity() == BufferPool.SMALL && max > BufferPool.SMALL) {
                wantLarge = true;
                ByteBuffer large = pool.takeLarge();
                if (large != null) {
                    pool.give(buffer);
                    buffer = large;
                }
            }
            buffer.clear();
            int n;
            try {
                n = from.readChannel(buffer, max); // at end of stream nothing is read: the piece is empty
            } catch (IOException e) {
                throw new ReadFailed(e.getMessage(), e);
            }
            trickling = n >= 0 && n < buffer.capacity() && n < max;
            filled = n == buffer.capacity();
            return buffer.flip();
        }

        private ByteBuffer takeLarge(long max) {
            ByteBuffer b = pool.takeLarge();
            return b != null ? b : pool.take(max);
        }

        /** Waits for the peer on the wire's own small buffer, holding nothing from the pool. */
        private ByteBuffer trickle(long max) throws IOException {
            pool.give(buffer);
            buffer = null;
            try {
                from.fill(); // at end of stream nothing is read: the piece is empty
            } catch (IOException e) {
                throw new ReadFailed(e.getMessage(), e);
            }
            trickling = from.in.remaining() < from.in.capacity(); // filled it: bytes come fast again
            return from.takeBuffered(max);
        }

        /** One CRLF-terminated line (chunk-size line, CRLF after data, trailer field). */
        String line(int limit) throws IOException, HttpError {
            if (!from.in.hasRemaining()) {
                sink.flushHead();
                pool.give(buffer); // the line may be long in coming: wait holding nothing pooled
                buffer = null;
            }
            try {
                return HeadReader.readLine(from, limit);
            } catch (HttpError e) {
                throw e;
            } catch (IOException e) {
                throw new ReadFailed(e.getMessage(), e);
            }
        }

        @Override
        public void close() {
            pool.give(buffer);
        }
    }

    /**
     * Writes pieces to the receiver, as chunks or raw, with the pending head in front;
     * through the gzip encoder first, if there is one. The source calls {@link #flushHead}
     * before every read that may wait: then what the encoder holds is flushed too.
     */
    private static final class Sink {
        private static final byte[] CRLF = {'\r', '\n'};
        private static final byte[] LAST_CHUNK = "0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1);

        private final Wire to;
        private final boolean chunked;
        private final Gzip.Encoder gzip; // null: the body goes out as it came
        private final Gzip.Out framed = this::frame; // where the encoder's output goes
        private final LongConsumer sent;
        private ByteBuffer head;
        private long written; // body bytes written

        Sink(Wire to, boolean chunked, ByteBuffer head, Gzip.Encoder gzip, LongConsumer sent) {
            this.to = to;
            this.chunked = chunked;
            this.head = head;
            this.gzip = gzip;
            this.sent = sent;
        }

        void write(ByteBuffer data) throws IOException {
            if (gzip != null) gzip.write(data, framed);
            else frame(data);
        }

        private void frame(ByteBuffer data) throws IOException {
            int n = data.remaining();
            if (!chunked) {
                send(data);
            } else {
                byte[] size = (Integer.toHexString(n) + "\r\n").getBytes(StandardCharsets.ISO_8859_1);
                send(ByteBuffer.wrap(size), data, ByteBuffer.wrap(CRLF));
            }
            written += n;
            sent.accept(written);
        }

        void flushHead() throws IOException {
            if (gzip != null) gzip.flush(framed);
            if (head != null) send();
        }

        void finish() throws IOException {
            if (gzip != null) gzip.finish(framed);
            if (chunked) send(ByteBuffer.wrap(LAST_CHUNK));
            else flushHead();
        }

        private void send(ByteBuffer... data) throws IOException {
            ByteBuffer[] all = data;
            if (head != null) {
                all = new ByteBuffer[data.length + 1];
                all[0] = head;
                System.arraycopy(data, 0, all, 1, data.length);
                head = null;
            }
            try {
                to.write(all);
            } catch (IOException e) {
                throw new WriteFailed(e);
            }
        }
    }
}
