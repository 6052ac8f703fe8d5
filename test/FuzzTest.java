import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Mutates valid messages byte by byte (fixed seeds, a bounded count) and checks the parser
 * against an oracle of the test's own, not against itself:
 *
 * <ul>
 * <li>Mutations that certainly break a message (a NUL or a bare LF in the head, a
 *     non-token byte in a field name, a non-hex byte in a chunk size) must be rejected,
 *     with 400 from a client and 502 from an upstream.
 * <li>Whatever the parser accepts, a small reference reader written here from RFC 9112
 *     (sharing no code with {@link HttpParser}) must also find well-formed, and must read
 *     the same way: method, target, Host, the field lines, and the body framing.
 * <li>Nothing ever hangs or throws anything but {@link HttpError}.
 * </ul>
 */
@Timeout(120)
class FuzzTest {
    private static final int CASES = 1500;
    private static final byte[] INTERESTING = TestSupport.bytes("\r\n \t:;,=\"\\\0\u000b\u000c\u0085\u00a0/?#%0aF-_");

    private static final List<String> REQUESTS = List.of(
            "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 5\r\nX: y\r\n\r\n",
            "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
            "GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
            "OPTIONS * HTTP/1.0\r\n\r\n");

    private static final List<String> RESPONSES = List.of(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");

    private static final List<String> CHUNK_LINES = List.of("5", "1a;name=value", "ff ; a = \"q\\\"x\"", "0");

    /** Bytes that are not tchar (RFC 9110 5.6.2), leaving out CR and LF (their own cases) and ':'. */
    private static final String NOT_TCHAR = " \t\"(),/;<=>?@[\\]{}\u0000\u0001\u001f\u007f\u0080\u0085\u00a0\u00ff";

    // ---- mutations ------------------------------------------------------------------

    static String mutate(String s, Random r) {
        StringBuilder b = new StringBuilder(s);
        int edits = 1 + r.nextInt(3);
        for (int i = 0; i < edits && b.length() > 1; i++) {
            int at = r.nextInt(b.length());
            char c = (char) (INTERESTING[r.nextInt(INTERESTING.length)] & 0xff);
            switch (r.nextInt(4)) {
                case 0 -> b.setCharAt(at, c);
                case 1 -> b.insert(at, c);
                case 2 -> b.deleteCharAt(at);
                default -> b.setCharAt(at, (char) r.nextInt(256));
            }
        }
        return b.toString();
    }

    /**
     * One mutation that makes a head invalid whatever else it holds: a NUL anywhere in it
     * (RFC 9110 5.5, RFC 9112 3), a bare LF anywhere but as the very last byte (RFC 9112
     * 2.2; there it would only end the head with a CRLF and start the next message), or a
     * non-token byte inside a field name (RFC 9112 5.1).
     */
    static String breakHead(String head, Random r) {
        StringBuilder b = new StringBuilder(head);
        List<int[]> names = fieldNames(head);
        int kind = r.nextInt(names.isEmpty() ? 2 : 3);
        switch (kind) {
            case 0 -> b.insert(r.nextInt(head.length()), '\0');
            case 1 -> b.insert(r.nextInt(head.length() - 1), '\n');
            default -> {
                int[] name = names.get(r.nextInt(names.size()));
                b.insert(name[0] + r.nextInt(name[1] - name[0] + 1), NOT_TCHAR.charAt(r.nextInt(NOT_TCHAR.length())));
            }
        }
        return b.toString();
    }

    /** [start, end) of each field name of a well-formed head. */
    static List<int[]> fieldNames(String head) {
        List<int[]> out = new ArrayList<>();
        for (int start = head.indexOf("\r\n") + 2; !head.startsWith("\r\n", start); start = head.indexOf("\r\n", start) + 2) {
            out.add(new int[] {start, head.indexOf(':', start)});
        }
        return out;
    }

    // ---- requests -------------------------------------------------------------------

    @Test
    void mutatedRequestsAreRejectedOrReadAsTheReferenceReadsThem() throws Exception {
        Random r = new Random(9112);
        Config config = TestSupport.config();
        Config.Server server = config.upstream().get(0);
        int accepted = 0;
        for (int i = 0; i < CASES; i++) {
            String input = mutate(REQUESTS.get(i % REQUESTS.size()), r);
            String what = escape(input);
            TestSupport.Parsed parsed;
            try {
                parsed = TestSupport.parseRequest(input);
            } catch (HttpError e) {
                // The mutations are small: no limit is near, so 414 and 431 can't be right.
                assertTrue(e.status == 400 || e.status == 501 || e.status == 505, "status " + e.status + " for " + what);
                continue;
            } catch (Exception e) {
                fail("input " + what + " threw " + e, e);
                return;
            }
            accepted++;
            Reading reference;
            try {
                reference = Reference.request(input);
            } catch (Reference.Malformed e) {
                fail("accepted " + what + ", which breaks a rule: " + e.getMessage());
                return;
            }
            assertEquals(reference.method(), parsed.request().method(), what);
            assertEquals(reference.target(), parsed.request().target(), what);
            assertEquals(reference.host(), parsed.request().host(), what);
            assertEquals(reference.fields(), fields(parsed.request().headers()), what);
            assertEquals(reference.body(), parsed.body(), what);

            // And what the proxy sends on is read the same way again.
            InetSocketAddress peer = new InetSocketAddress("127.0.0.1", 1);
            byte[] out = Forwarding.requestHead(parsed.request(), parsed.body(), peer, peer.getAddress(),
                    config, server, null, false, LogFormat::newRequestId);
            TestSupport.Parsed again = TestSupport.parseRequest(TestSupport.text(out));
            assertEquals(reference.method(), again.request().method(), what);
            assertEquals(reference.target(), again.request().target(), what);
            assertEquals(reference.body(), again.body(), what);
        }
        assertTrue(accepted > CASES / 20, "the mutations are mild enough that some are accepted: " + accepted);
    }

    @Test
    void requestsWithACertainlyInvalidHeadAreRejectedWith400() throws Exception {
        Random r = new Random(3986);
        for (int i = 0; i < CASES; i++) {
            String input = breakHead(REQUESTS.get(i % REQUESTS.size()), r);
            assertEquals(400, TestSupport.requestStatus(input), escape(input));
        }
    }

    // ---- responses ------------------------------------------------------------------

    @Test
    void mutatedResponsesAreRejectedWith502OrFramedAsTheReferenceFramesThem() throws Exception {
        Random r = new Random(7230);
        int accepted = 0;
        for (int i = 0; i < CASES; i++) {
            String input = mutate(RESPONSES.get(i % RESPONSES.size()), r);
            String what = escape(input);
            Body body;
            try {
                body = TestSupport.responseBody(input, "GET");
            } catch (HttpError e) {
                assertEquals(502, e.status, what);
                continue;
            } catch (Exception e) {
                fail("input " + what + " threw " + e, e);
                return;
            }
            accepted++;
            try {
                assertEquals(Reference.responseBody(input), body, what);
            } catch (Reference.Malformed e) {
                fail("accepted " + what + ", which breaks a rule: " + e.getMessage());
            }
        }
        assertTrue(accepted > CASES / 20, "some mutations are accepted: " + accepted);
    }

    @Test
    void responsesWithACertainlyInvalidHeadAreRejectedWith502() throws Exception {
        Random r = new Random(9110);
        for (int i = 0; i < CASES; i++) {
            String input = breakHead(RESPONSES.get(i % RESPONSES.size()), r);
            try {
                Body body = TestSupport.responseBody(input, "GET");
                fail("accepted " + escape(input) + " as " + body);
            } catch (HttpError e) {
                assertEquals(502, e.status, escape(input));
            }
        }
    }

    // ---- chunk-size lines ---------------------------------------------------------------

    @Test
    void mutatedChunkSizeLinesAreRejectedWith400OrSizedAsTheReferenceSizesThem() {
        Random r = new Random(1);
        int accepted = 0;
        for (int i = 0; i < CASES * 4; i++) {
            String line = mutate(CHUNK_LINES.get(i % CHUNK_LINES.size()), r);
            long size;
            try {
                size = Relay.chunkSize(line);
            } catch (HttpError e) {
                assertEquals(400, e.status, escape(line));
                continue;
            } catch (RuntimeException e) {
                fail("chunk line " + escape(line) + " threw " + e, e);
                return;
            }
            accepted++;
            try {
                assertEquals(Reference.chunkSize(line), size, escape(line));
            } catch (Reference.Malformed e) {
                fail("accepted chunk line " + escape(line) + ", which breaks a rule: " + e.getMessage());
            }
        }
        assertTrue(accepted > CASES / 5, "some mutations are accepted: " + accepted);
    }

    /** A byte that is neither a hex digit, nor ';', nor BWS, put among the digits: never a chunk size. */
    @Test
    void aNonHexByteInAChunkSizeIsRejectedWith400() {
        Random r = new Random(7112);
        String notHex = "gGxXzZ-+_.,:=\"\\/\u0000\u000b\u00a0\u00ff";
        for (int i = 0; i < CASES; i++) {
            String line = CHUNK_LINES.get(i % CHUNK_LINES.size());
            int digits = 0;
            while (digits < line.length() && Character.digit(line.charAt(digits), 16) >= 0) digits++;
            String bad = new StringBuilder(line).insert(r.nextInt(digits + 1), notHex.charAt(r.nextInt(notHex.length()))).toString();
            try {
                long size = Relay.chunkSize(bad);
                fail("accepted chunk line " + escape(bad) + " as size " + size);
            } catch (HttpError e) {
                assertEquals(400, e.status, escape(bad));
            }
        }
    }

    // ---- the reference reader -----------------------------------------------------------

    /** How the reference reads a request head. Fields as name/value pairs, in order. */
    record Reading(String method, String target, String host, List<List<String>> fields, Body body) {}

    static List<List<String>> fields(Headers headers) {
        List<List<String>> out = new ArrayList<>();
        for (Headers.Field f : headers) out.add(List.of(f.name(), f.value()));
        return out;
    }

    /**
     * A deliberately plain reader of message heads, from the ABNF of RFC 9112 and RFC 9110
     * (token, field-value, OWS, Content-Length = 1*DIGIT, the framing rules of 6.3). It
     * checks rules that every valid message keeps, so a message it calls malformed must
     * never be accepted; it is not as strict as the proxy (Host syntax, target characters),
     * so that the proxy rejects more is fine.
     */
    static final class Reference {
        static final class Malformed extends Exception {
            Malformed(String message) {
                super(message, null, false, false);
            }
        }

        private static final String TCHAR_SPECIALS = "!#$%&'*+-.^_`|~";

        static boolean tchar(char c) {
            return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || TCHAR_SPECIALS.indexOf(c) >= 0;
        }

        static boolean token(String s) {
            if (s.isEmpty()) return false;
            for (char c : s.toCharArray()) if (!tchar(c)) return false;
            return true;
        }

        static String ows(String s) {
            int a = 0, b = s.length();
            while (a < b && (s.charAt(a) == ' ' || s.charAt(a) == '\t')) a++;
            while (b > a && (s.charAt(b - 1) == ' ' || s.charAt(b - 1) == '\t')) b--;
            return s.substring(a, b);
        }

        /** The lines of the head, without their CRLFs and without the empty line; every line must end in CRLF. */
        static List<String> lines(String raw, boolean request) throws Malformed {
            int from = 0;
            while (request && raw.startsWith("\r\n", from)) from += 2; // RFC 9112 2.2: empty lines before a request
            int end = raw.indexOf("\r\n\r\n", from); // what follows is the body or the next message
            if (end < 0) throw new Malformed("no end of head");
            List<String> lines = List.of(raw.substring(from, end).split("\r\n", -1));
            for (String line : lines) {
                for (char c : line.toCharArray()) {
                    if (c == '\r' || c == '\n') throw new Malformed("bare CR or LF");
                    if (c < 0x20 && c != '\t' || c == 0x7f) throw new Malformed("control byte " + (int) c);
                }
            }
            return lines;
        }

        /** field-line = field-name ":" OWS field-value OWS; names are tokens, nothing before the colon. */
        static List<List<String>> fieldLines(List<String> lines) throws Malformed {
            List<List<String>> out = new ArrayList<>();
            for (String line : lines.subList(1, lines.size())) {
                int colon = line.indexOf(':');
                if (colon < 0) throw new Malformed("field line without colon");
                String name = line.substring(0, colon);
                if (!token(name)) throw new Malformed("field name is not a token: " + name);
                out.add(List.of(name, ows(line.substring(colon + 1))));
            }
            return out;
        }

        static List<String> all(List<List<String>> fields, String name) {
            List<String> out = new ArrayList<>();
            for (List<String> f : fields) if (f.get(0).equalsIgnoreCase(name)) out.add(f.get(1));
            return out;
        }

        static Body contentLength(List<String> cl) throws Malformed {
            if (cl.size() != 1) throw new Malformed("Content-Length " + cl);
            String v = cl.get(0);
            if (v.isEmpty() || v.length() > 18 || !v.chars().allMatch(c -> c >= '0' && c <= '9')) {
                throw new Malformed("Content-Length " + v);
            }
            return new Body.Length(Long.parseLong(v));
        }

        static Reading request(String raw) throws Malformed {
            List<String> lines = lines(raw, true);
            String[] parts = lines.get(0).split(" ", -1);
            if (parts.length != 3) throw new Malformed("request line is not three parts");
            String method = parts[0], target = parts[1], version = parts[2];
            if (!token(method)) throw new Malformed("method");
            // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3); a higher 1.x minor is read as 1.1.
            if (!version.matches("HTTP/1\\.[0-9]")) throw new Malformed("version " + version);
            for (char c : target.toCharArray()) if (c <= 0x20 || c >= 0x7f) throw new Malformed("target byte " + (int) c);
            boolean http11 = !version.equals("HTTP/1.0");

            // Field names with "_" are dropped, as nginx does (see HttpParser.parseFields).
            List<List<String>> fields = new ArrayList<>(fieldLines(lines));
            fields.removeIf(f -> f.get(0).contains("_"));
            List<String> hosts = all(fields, "Host");
            if (hosts.size() > 1) throw new Malformed("two Host fields");

            String host = hosts.isEmpty() ? null : hosts.get(0);
            String path;
            if (target.equals("*")) {
                if (!method.equals("OPTIONS")) throw new Malformed("* is for OPTIONS only");
                path = target;
            } else if (target.startsWith("/")) {
                path = target;
            } else {
                // absolute-form (RFC 9112 3.2.2): its authority is the Host, forwarded as such
                int scheme = target.indexOf("://");
                if (scheme < 0) throw new Malformed("target form");
                String s = target.substring(0, scheme).toLowerCase();
                if (!s.equals("http") && !s.equals("https")) throw new Malformed("scheme " + s);
                int authorityEnd = scheme + 3;
                while (authorityEnd < target.length() && "/?".indexOf(target.charAt(authorityEnd)) < 0) authorityEnd++;
                host = target.substring(scheme + 3, authorityEnd);
                String rest = target.substring(authorityEnd);
                path = rest.startsWith("/") ? rest : "/" + rest;
                fields.removeIf(f -> f.get(0).equalsIgnoreCase("Host"));
                fields.add(List.of("Host", host));
            }
            if (host == null && http11) throw new Malformed("HTTP/1.1 without Host");
            if (host != null && host.isEmpty()) throw new Malformed("empty Host");

            // RFC 9112 6.3: Transfer-Encoding wins over nothing: together with Content-Length
            // it is rejected; only a single "chunked" is decoded, and never for HTTP/1.0.
            List<String> te = all(fields, "Transfer-Encoding");
            List<String> cl = all(fields, "Content-Length");
            Body body;
            if (!te.isEmpty()) {
                if (!http11 || !cl.isEmpty() || te.size() > 1 || !te.get(0).equalsIgnoreCase("chunked")) {
                    throw new Malformed("Transfer-Encoding " + te + " with Content-Length " + cl);
                }
                body = Body.CHUNKED;
            } else {
                body = cl.isEmpty() ? Body.EMPTY : contentLength(cl);
            }
            return new Reading(method, path, host, fields, body);
        }

        /** The framing of a response to GET (RFC 9112 6.3 rules 1, 3-8). */
        static Body responseBody(String raw) throws Malformed {
            List<String> lines = lines(raw, false);
            String line = lines.get(0);
            if (!line.matches("(?s)HTTP/1\\.[0-9] .*")) throw new Malformed("status line"); // (?s): "." must match NEL (0x85) too
            if (line.length() < 12 || line.length() > 12 && line.charAt(12) != ' ') throw new Malformed("status code");
            int status = 0;
            for (char c : line.substring(9, 12).toCharArray()) {
                if (c < '0' || c > '9') throw new Malformed("status code");
                status = status * 10 + (c - '0');
            }
            if (status < 100 || status > 599) throw new Malformed("status " + status);
            List<List<String>> fields = fieldLines(lines);
            if (status < 200 || status == 204 || status == 304) return Body.EMPTY;
            List<String> te = all(fields, "Transfer-Encoding");
            List<String> cl = all(fields, "Content-Length");
            if (!te.isEmpty()) {
                if (line.startsWith("HTTP/1.0") || !cl.isEmpty() || te.size() > 1 || !te.get(0).equalsIgnoreCase("chunked")) {
                    throw new Malformed("Transfer-Encoding " + te + " with Content-Length " + cl);
                }
                return Body.CHUNKED;
            }
            return cl.isEmpty() ? Body.UNTIL_CLOSE : contentLength(cl);
        }

        /** chunk-size = 1*HEXDIG; what follows is nothing, or BWS ";" and an extension. */
        static long chunkSize(String line) throws Malformed {
            long size = 0;
            int i = 0;
            for (; i < line.length() && Character.digit(line.charAt(i), 16) >= 0 && line.charAt(i) < 0x80; i++) {
                if (i == 15) throw new Malformed("more hex digits than a size can hold");
                size = size * 16 + Character.digit(line.charAt(i), 16);
            }
            if (i == 0) throw new Malformed("no hex digit");
            String rest = ows(line.substring(i));
            if (!rest.isEmpty() && rest.charAt(0) != ';') throw new Malformed("not an extension: " + rest);
            if (rest.isEmpty() && i < line.length()) throw new Malformed("whitespace after the size");
            return size;
        }
    }

    static String escape(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c >= 0x20 && c < 0x7f) b.append(c);
            else b.append(String.format("\\x%02x", (int) c));
        }
        return b.toString();
    }
}
