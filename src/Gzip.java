import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Locale;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

/**
 * gzip on the fly, as nginx's gzip filter (the tutorial's {@code gzip on}): a response the
 * client accepts compressed goes out with {@code Content-Encoding: gzip}, compressed as it
 * streams. Three parts, each used once per response from {@link ProxyPass#respond}:
 *
 * <ol>
 *   <li>{@link #start}: the decision, a pure function of the request and the response head
 *       ({@link #eligible}, {@link #accepts}), and the head's rewrite ({@link #rewriteHead}).
 *   <li>{@link Encoder}: the body transform that {@link Relay}'s sink writes through. The
 *       gzip framing (RFC 1952) is ours: a 10-byte header, raw deflate (RFC 1951) from a
 *       {@link Deflater} with nowrap, then the CRC-32 and length of the input. Before each
 *       read that may wait on the upstream, what was compressed so far is sync-flushed,
 *       so a server-sent event reaches the client when it is sent, not when the next one
 *       fills a deflate block.
 *   <li>{@link Deflaters} (a file of its own): zlib's state is native memory, about
 *       256 KiB per deflater, invisible to the heap limit. So deflaters are counted in
 *       {@link BufferPool}'s budget, at most half of it, and kept for reuse; when none is
 *       free, the response goes out uncompressed, never an error.
 * </ol>
 *
 * <p>Off (no {@code gzip = on}), {@link Config#gzip} is null and {@link #start} returns at
 * once: no deflater, no header touched.
 */
final class Gzip {
    /**
     * The gzip keys (nginx's names): the media ranges compressed, the least Content-Length
     * compressed when the length is known, zlib's level (1 fastest, 9 smallest), and
     * whether to add {@code Vary: Accept-Encoding}.
     */
    record Settings(List<String> types, long minLength, int level, boolean vary) {}

    /**
     * gzip_types by default: text-like content, which compresses well. Never images,
     * archives or video: they are compressed already (SVG is XML text).
     */
    static final String DEFAULT_TYPES = "text/* application/json application/javascript application/xml "
            + "application/xhtml+xml application/rss+xml application/atom+xml application/ld+json "
            + "application/manifest+json application/problem+json application/x-javascript image/svg+xml";

    /** The gzip member header (RFC 1952 2.3): magic, deflate, no flags, no mtime, no extra flags, OS unknown. */
    private static final byte[] HEADER = {0x1f, (byte) 0x8b, 8, 0, 0, 0, 0, 0, 0, (byte) 0xff};

    private static final byte[] NO_INPUT = {};

    private Gzip() {}

    /**
     * Decides whether this response goes out compressed, and if so rewrites its head and
     * returns the encoder its body goes through (the caller closes it), or null when the
     * body goes out as it came. A HEAD gets the head its GET would get (RFC 9110 9.3.2),
     * and null: there is no body to compress.
     */
    static Encoder start(Settings gzip, BufferPool pool, HttpParser.Request req, HttpParser.Response resp,
                         Body in, boolean upgrade) {
        if (gzip == null || upgrade) return null;
        boolean head = req.method().equals("HEAD");
        Headers h = resp.headers();
        if (!eligible(gzip, resp.status(), h, in, head)) return null;
        // The response varies with Accept-Encoding whether or not this client gets it compressed:
        // a cache must know, so both variants say so.
        if (gzip.vary()) mergeVary(h);
        if (!accepts(req.headers().all("Accept-Encoding"))) return null;
        if (head) {
            rewriteHead(h);
            return null;
        }
        Deflaters.Unit unit = pool.deflaters.take(gzip.level());
        if (unit == null) return null; // the budget's share for deflaters is in use: identity
        rewriteHead(h);
        return new Encoder(pool.deflaters, unit);
    }

    /**
     * Whether the response may be compressed, whoever asks: a status with a body but 206
     * and 416 (ranges count bytes of the identity representation), a listed type, not
     * encoded already, no Cache-Control: no-transform (RFC 9111 5.2.2.6), no
     * Content-Range, and at least min length when the length is known.
     */
    static boolean eligible(Settings gzip, int status, Headers h, Body in, boolean head) {
        if (status < 200 || status == 204 || status == 304 || status == 206 || status == 416) return false;
        if (!head && in.isEmpty()) return false;
        if (h.has("Content-Encoding") || h.has("Content-Range") || h.hasToken("Cache-Control", "no-transform")) return false;
        if (!typeListed(gzip.types(), h.first("Content-Type"))) return false;
        long length = in instanceof Body.Length l ? l.bytes() : head ? headLength(h) : -1;
        return length < 0 || length >= gzip.minLength();
    }

    /** The Content-Length a HEAD response announces for its GET, or -1. */
    private static long headLength(Headers h) {
        List<String> cl = h.all("Content-Length");
        if (cl.size() != 1 || cl.get(0).length() > 18 || !HttpParser.isDigits(cl.get(0))) return -1;
        return Long.parseLong(cl.get(0));
    }

    /** The media type (before any parameter, RFC 9110 8.3.1) matches "type/subtype", "type/*" or "*". */
    static boolean typeListed(List<String> types, String contentType) {
        if (contentType == null) return false;
        int semicolon = contentType.indexOf(';');
        String type = (semicolon < 0 ? contentType : contentType.substring(0, semicolon)).strip().toLowerCase(Locale.ROOT);
        int slash = type.indexOf('/');
        if (slash <= 0) return false;
        for (String t : types) {
            if (t.equals("*") || t.equals(type) || t.endsWith("/*") && type.regionMatches(0, t, 0, slash + 1)
                    && t.length() == slash + 2) {
                return true;
            }
        }
        return false;
    }

    /**
     * Accept-Encoding (RFC 9110 12.5.3): gzip (or x-gzip) with a q-value above 0, or "*"
     * above 0 when gzip is not named. "gzip;q=0" refuses it even where "*" would allow it;
     * no field, an empty one, or "identity" alone means no coding.
     */
    static boolean accepts(List<String> acceptEncoding) {
        int gzip = -1, any = -1; // q-values in thousandths; -1: not named
        for (String value : acceptEncoding) {
            for (String element : value.split(",")) {
                String[] parts = element.split(";");
                String coding = parts[0].strip().toLowerCase(Locale.ROOT);
                int q = 1000;
                for (int i = 1; i < parts.length; i++) {
                    String p = parts[i].strip();
                    if (p.startsWith("q=") || p.startsWith("Q=")) q = qvalue(p.substring(2));
                }
                if (coding.equals("gzip") || coding.equals("x-gzip")) gzip = Math.max(gzip, q);
                else if (coding.equals("*")) any = Math.max(any, q);
            }
        }
        return gzip >= 0 ? gzip > 0 : any > 0;
    }

    /** qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) (RFC 9110 12.4.2), in thousandths; bad = 0. */
    static int qvalue(String s) {
        if (!s.matches("0(\\.\\d{0,3})?|1(\\.0{0,3})?")) return 0; // a malformed weight accepts nothing
        if (s.charAt(0) == '1') return 1000;
        String digits = s.length() > 2 ? s.substring(2) : "";
        return digits.isEmpty() ? 0 : Integer.parseInt((digits + "00").substring(0, 3));
    }

    /**
     * The head of a compressed response: Content-Encoding: gzip; no Content-Length (the
     * framing is chunked, or the close); a strong ETag made weak, since the bytes differ
     * (RFC 9110 8.8.1, as nginx does); no Accept-Ranges, since ranges of the compressed
     * bytes are not offered.
     */
    static void rewriteHead(Headers h) {
        h.remove("Content-Length");
        h.remove("Accept-Ranges");
        h.add("Content-Encoding", "gzip");
        String etag = h.first("ETag");
        if (etag != null && etag.startsWith("\"")) h.set("ETag", "W/" + etag);
    }

    /** Vary: the upstream's fields merged into one, with Accept-Encoding in it once ("*" covers it already). */
    static void mergeVary(Headers h) {
        List<String> vary = h.tokens("Vary");
        for (String v : vary) {
            if (v.equals("*") || v.equalsIgnoreCase("Accept-Encoding")) {
                if (h.all("Vary").size() > 1) h.set("Vary", String.join(", ", vary));
                return;
            }
        }
        h.set("Vary", vary.isEmpty() ? "Accept-Encoding" : String.join(", ", vary) + ", Accept-Encoding");
    }

    /** nginx's $gzip_ratio: original bytes over compressed bytes, two decimals; null when not compressed. */
    static String ratio(long in, long out) {
        if (out == 0) return null;
        long hundredths = Math.round(in * 100.0 / out);
        return hundredths / 100 + "." + (hundredths % 100 < 10 ? "0" : "") + hundredths % 100;
    }

    /** Where an encoder's compressed pieces go: the sink's writer of a chunk (or raw bytes). */
    interface Out {
        void write(ByteBuffer piece) throws IOException;
    }

    /**
     * One response's compression: body pieces in, gzip pieces out. Holds a deflater from
     * the pool until {@link #close}, which gives it back whatever happened.
     */
    static final class Encoder implements AutoCloseable {
        private final Deflaters pool;
        private final Deflaters.Unit unit;
        private final Deflater deflater;
        private final ByteBuffer out;
        private final CRC32 crc = new CRC32();
        private long bytesIn, bytesOut;
        private boolean unflushed; // input went in since the last flush
        private boolean closed;

        private Encoder(Deflaters pool, Deflaters.Unit unit) {
            this.pool = pool;
            this.unit = unit;
            this.deflater = unit.deflater();
            this.out = unit.output().clear();
            out.put(HEADER); // goes out with the first compressed bytes
        }

        /** Compresses a piece of the body (all of it is consumed); writes out whatever fills the buffer. */
        void write(ByteBuffer data, Out to) throws IOException {
            bytesIn += data.remaining();
            crc.update(data.duplicate());
            deflater.setInput(data);
            while (!deflater.needsInput()) {
                deflater.deflate(out, Deflater.NO_FLUSH);
                if (!out.hasRemaining()) emit(to);
            }
            // The deflater keeps the buffer it was given, and reads it again at the next
            // deflate: by then the relay may have refilled it (a wire's read buffer).
            deflater.setInput(NO_INPUT);
            unflushed = true;
        }

        /** Sync-flushes what was compressed so far (deflate's empty stored block ends it), if anything was. */
        void flush(Out to) throws IOException {
            if (!unflushed) return;
            unflushed = false;
            while (true) {
                int room = out.remaining();
                int n = deflater.deflate(out, Deflater.SYNC_FLUSH);
                if (n < room) break; // all flushed (the Javadoc: a full buffer means call again)
                emit(to);
            }
            emit(to);
        }

        /** The end of the body: the last deflate block, then the trailer (RFC 1952 2.3.1: CRC32, ISIZE). */
        void finish(Out to) throws IOException {
            deflater.finish();
            while (!deflater.finished()) {
                deflater.deflate(out, Deflater.NO_FLUSH);
                if (!out.hasRemaining()) emit(to);
            }
            if (out.remaining() < 8) emit(to);
            out.order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt((int) crc.getValue()).putInt((int) bytesIn)
                    .order(java.nio.ByteOrder.BIG_ENDIAN);
            emit(to);
        }

        private void emit(Out to) throws IOException {
            out.flip();
            if (out.hasRemaining()) {
                bytesOut += out.remaining();
                to.write(out);
            }
            out.clear();
        }

        /** Bytes of the body as the upstream sent them. */
        long bytesIn() {
            return bytesIn;
        }

        /** Bytes of gzip that went out: $body_bytes_sent. */
        long bytesOut() {
            return bytesOut;
        }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            pool.give(unit);
        }
    }
}
