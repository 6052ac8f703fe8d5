import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.params.provider.Arguments.argumentSet;

import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The parser alone, from literal bytes: each table row is one input of HTTP-RULES.md
 * (groups 1-5) and the answer it must get. Requests go through a real {@link Wire} (so the
 * line-ending and size rules apply) and {@link HttpParser}; 0 means accepted. Where the
 * rules allow two answers, the row holds the one this parser gives.
 */
@Timeout(30)
class ParserTest {
    private static final TestSupport.Stage HEAD = TestSupport.Stage.HEAD;
    private static final TestSupport.Stage PARSE = TestSupport.Stage.PARSE;
    private static final TestSupport.Stage FRAMING = TestSupport.Stage.FRAMING;

    // ---- helpers: a request around the part under test, and a readable name for it -----

    /** A request with this request line and a Host. */
    static String withLine(String requestLine) {
        return requestLine + "\r\nHost: a\r\n\r\n";
    }

    /** A GET with a Host followed by these field lines. */
    static String withFields(String fieldLines) {
        return "GET / HTTP/1.1\r\nHost: a\r\n" + fieldLines + "\r\n\r\n";
    }

    /** A POST with a Host followed by these field lines. */
    static String post(String fieldLines) {
        return "POST / HTTP/1.1\r\nHost: a\r\n" + fieldLines + "\r\n\r\n";
    }

    /** Shows a raw input with its control bytes and non-ASCII bytes escaped, shortened if long. */
    static String show(String raw) {
        StringBuilder sb = new StringBuilder();
        for (char c : raw.toCharArray()) {
            if (c == '\r') sb.append("\\r");
            else if (c == '\n') sb.append("\\n");
            else if (c == '\t') sb.append("\\t");
            else if (c < 0x20 || c >= 0x7f) sb.append(String.format("\\x%02x", (int) c));
            else sb.append(c);
        }
        return sb.length() > 90 ? sb.substring(0, 70) + "... (" + raw.length() + " bytes)" : sb.toString();
    }

    static Arguments row(String shown, String raw, int status) {
        return argumentSet(show(shown) + " -> " + (status == 0 ? "accepted" : status), raw, status);
    }

    static Arguments line(String requestLine, int status) {
        return row(requestLine, withLine(requestLine), status);
    }

    static Arguments field(String fieldLines, int status) {
        return row(fieldLines, withFields(fieldLines), status);
    }

    static Arguments postField(String fieldLines, int status) {
        return row("POST + " + fieldLines, post(fieldLines), status);
    }

    // ---- 1 request line (RFC 9112 2.2, 3, 3.2) --------------------------------------

    static Stream<Arguments> requestLines() {
        return Stream.of(
                row("GET /\\r\\n\\r\\n (HTTP/0.9)", "GET /\r\n\r\n", 400),
                row("GET / (HTTP/0.9) then fields", "GET /\r\nHost: a\r\n\r\n", 400),
                line("GET / HTTP/1.01", 400),
                line("GET / HTTP/01.1", 400),
                line("GET / HTTP/1.10", 400),
                line("GET / http/1.1", 400),
                line("GET / HTTP/1", 400),
                line("GET / HTTP/11.1", 400),
                line("GET / HTP/1.1", 400),
                line("GET / HTTP/1.1 ", 400),
                line("GET / HTTP/1.1\t", 400),
                line("GET / HTTP/2.0", 505),
                line("GET / HTTP/3.0", 505),
                line("GET  / HTTP/1.1", 400),
                line("GET /  HTTP/1.1", 400),
                line(" GET / HTTP/1.1", 400),
                line("GET\t/ HTTP/1.1", 400),
                line("GET /\tHTTP/1.1", 400),
                line("GET\u000b/ HTTP/1.1", 400),
                line("GET\u000c/ HTTP/1.1", 400),
                line("GET / \u000bHTTP/1.1", 400),
                line("GET\r/ HTTP/1.1", 400),
                line("GET /\rHTTP/1.1", 400),
                line("GET /a b HTTP/1.1", 400),
                line("GET /\u0000 HTTP/1.1", 400),
                line("GET /\u0002 HTTP/1.1", 400),
                line("GET /\u007f HTTP/1.1", 400),
                line("GET /\u0080 HTTP/1.1", 400),
                line("GET /caf\u00e9 HTTP/1.1", 400),
                line("GET /\u00ff HTTP/1.1", 400),
                line("GET /#frag HTTP/1.1", 400),
                line("GET /<script> HTTP/1.1", 400),
                line("GET /a\"b HTTP/1.1", 400),
                line("GET /a\\b HTTP/1.1", 400),
                line("GET /{x} HTTP/1.1", 400),
                line("GET /%zz HTTP/1.1", 400),
                line("GET /%0 HTTP/1.1", 400),
                line("GET * HTTP/1.1", 400),
                line("OPTIONS */test HTTP/1.1", 400),
                line("GET host:80 HTTP/1.1", 400),
                line("GET admin HTTP/1.1", 400),
                line("GET ftp://a/ HTTP/1.1", 400),
                line("GET http://u@evil/ HTTP/1.1", 400),
                line("GET http:///x HTTP/1.1", 400),
                line("CONNECT / HTTP/1.1", 400),
                line("CONNECT * HTTP/1.1", 400),
                line("CONNECT example.com:443 HTTP/1.1", 501),
                line("GE(T / HTTP/1.1", 400),
                line("GET\u0000 / HTTP/1.1", 400),
                line("G:T / HTTP/1.1", 400),
                line("GET\u00a0/ HTTP/1.1", 400),
                line("X".repeat(25) + " / HTTP/1.1", 501),
                line("TRACE / HTTP/1.1", 405),
                line("GET /" + "a".repeat(9000) + " HTTP/1.1", 414),
                row("\\n before the request line (bare LF)", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
                row("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
                row("TLS ClientHello", "\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003"
                        + "\u00aa\u00bb\u00cc\u00dd\r\n\r\n", 400),
                row("binary garbage", "\u00ff\u00fe\u0000\u0001\u0002garbage\r\n\r\n", 400));
    }

    @ParameterizedTest
    @MethodSource("requestLines")
    void requestLine(String raw, int status) throws Exception {
        assertEquals(status, TestSupport.requestStatus(raw));
    }

    static Stream<Arguments> acceptedRequestLines() {
        return Stream.of(
                argumentSet("leading CRLF", "\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/x"),
                argumentSet("two leading CRLFs", "\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/x"),
                argumentSet("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", "*"),
                argumentSet("%00 and %0d%0a kept, never decoded", withLine("GET /p?q=%00%0d%0a HTTP/1.1"),
                        "GET", "/p?q=%00%0d%0a"),
                argumentSet("method is case-sensitive: get stays get", withLine("get / HTTP/1.1"), "get", "/"),
                argumentSet("unknown method of 24 octets", withLine("X".repeat(24) + " / HTTP/1.1"), "X".repeat(24), "/"),
                argumentSet("8000-octet target", withLine("GET /" + "a".repeat(7999) + " HTTP/1.1"),
                        "GET", "/" + "a".repeat(7999)),
                argumentSet("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", "GET", "/"),
                argumentSet("IPv6 literal Host with port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "GET", "/"),
                argumentSet("sub-delims and query in target", withLine("GET /a;b=c,d!$&'()*+@:~/?x=[1] HTTP/1.1"),
                        "GET", "/a;b=c,d!$&'()*+@:~/?x=[1]"));
    }

    @ParameterizedTest
    @MethodSource("acceptedRequestLines")
    void acceptedRequestLine(String raw, String method, String target) throws Exception {
        var parsed = TestSupport.parseRequest(raw, 8192, 16384);
        assertEquals(method, parsed.request().method());
        assertEquals(target, parsed.request().target(), "the target is kept byte for byte");
        assertEquals(Body.EMPTY, parsed.body());
    }

    /** max_request_line counts the octets of the request line without its CRLF; "longer is 414". */
    static Stream<Arguments> requestLineLengths() {
        return Stream.of(
                argumentSet("limit 100, line of 99 octets -> accepted", 100, 99, 0),
                argumentSet("limit 100, line of 100 octets -> accepted", 100, 100, 0),
                argumentSet("limit 100, line of 101 octets -> 414", 100, 101, 414),
                argumentSet("limit 100, line of 102 octets -> 414", 100, 102, 414),
                argumentSet("limit 8192, line of 8192 octets -> accepted", 8192, 8192, 0),
                argumentSet("limit 8192, line of 8193 octets -> 414", 8192, 8193, 414));
    }

    @ParameterizedTest
    @MethodSource("requestLineLengths")
    void requestLineLimit(int limit, int length, int status) throws Exception {
        String requestLine = "GET /" + "a".repeat(length - "GET / HTTP/1.1".length()) + " HTTP/1.1";
        assertEquals(length, requestLine.length());
        assertEquals(status, TestSupport.requestStatus(withLine(requestLine), limit, 16384));
    }

    /** max_header_size counts the whole head, request line to the empty line; "larger is 431". */
    static Stream<Arguments> headSizes() {
        return Stream.of(
                argumentSet("limit 256, head of 255 octets -> accepted", 256, 255, 0),
                argumentSet("limit 256, head of 256 octets -> accepted", 256, 256, 0),
                argumentSet("limit 256, head of 257 octets -> 431", 256, 257, 431),
                argumentSet("limit 16384, head of 16384 octets -> accepted", 16384, 16384, 0),
                argumentSet("limit 16384, head of 16385 octets -> 431", 16384, 16385, 431));
    }

    @ParameterizedTest
    @MethodSource("headSizes")
    void headSizeLimit(int limit, int length, int status) throws Exception {
        String start = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
        String raw = start + "v".repeat(length - start.length() - 4) + "\r\n\r\n";
        assertEquals(length, raw.length());
        assertEquals(status, TestSupport.requestStatus(raw, 8192, limit));
    }

    @Test
    void absoluteFormAuthorityReplacesHostSoRoutingAndForwardingAgree() throws Exception {
        var parsed = TestSupport.parseRequest("GET http://evil/x?y HTTP/1.1\r\nHost: good\r\n\r\n", 8192, 16384);
        assertEquals("evil", parsed.request().host(), "routed by the target's authority");
        assertEquals(List.of("evil"), parsed.request().headers().all("Host"), "and forwarded with the same Host");
        assertEquals("/x?y", parsed.request().target());

        var bare = TestSupport.parseRequest("GET HTTP://evil:81 HTTP/1.1\r\nHost: good\r\n\r\n", 8192, 16384);
        assertEquals("evil:81", bare.request().host());
        assertEquals(List.of("evil:81"), bare.request().headers().all("Host"));
        assertEquals("/", bare.request().target());
    }

    // ---- 2 request headers (RFC 9112 2.2, 5; RFC 9110 5.5) ---------------------------

    static Stream<Arguments> requestHeaders() {
        return Stream.of(
                row("Host : a", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
                row("Host\t: a", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
                field("X: a\r\n b", 400),
                field("X: a\r\n\tb", 400),
                row("whitespace-led first field line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
                row("tab-led first field line", "GET / HTTP/1.1\r\n\tX: y\r\nHost: a\r\n\r\n", 400),
                field("Foo", 400),
                field("Te\nst: x", 400),
                field(": v", 400),
                field(":", 400),
                field("X@: v", 400),
                field("X\u0085: v", 400),
                field("X(: v", 400),
                field("X\u0000: v", 400),
                field("X\u00a0: v", 400),
                field("X Y: v", 400),
                field("\"X\": v", 400),
                field("X: a\rb", 400),
                field("X: a\u0000b", 400),
                field("X: a\u0001b", 400),
                field("X: a\u007fb", 400),
                field("X: a\u000bb", 400),
                row("bare LF request", "GET / HTTP/1.1\nHost: a\n\n", 400),
                row("bare LF after the fields only", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
                row("\\r\\r\\n terminators", "GET / HTTP/1.1\r\r\nHost: a\r\r\n\r\r\n", 400),
                field("X: a\r\r\nY: b", 400),
                row("no Host in HTTP/1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
                row("two Host lines", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
                row("two Host lines, different case", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
                row("Host: a, b", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
                row("Host: a,b", "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
                row("Host: u@a", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
                row("Host: a/p", "GET / HTTP/1.1\r\nHost: a/p\r\n\r\n", 400),
                row("Host: a b", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
                row("Host: (empty)", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400),
                row("Host:a:port", "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", 400),
                row("Host: a?b", "GET / HTTP/1.1\r\nHost: a?b\r\n\r\n", 400),
                row("Host: a#b", "GET / HTTP/1.1\r\nHost: a#b\r\n\r\n", 400),
                row("20 KiB head", withFields("X: " + "y".repeat(20 * 1024)), 431));
    }

    @ParameterizedTest
    @MethodSource("requestHeaders")
    void requestHeader(String raw, int status) throws Exception {
        assertEquals(status, TestSupport.requestStatus(raw));
    }

    static Stream<Arguments> acceptedHosts() {
        return Stream.of(
                argumentSet("Host: a", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "a"),
                argumentSet("Host:\\ta\\t (OWS stripped)", "GET / HTTP/1.1\r\nHost:\ta\t\r\n\r\n", "a"),
                argumentSet("host in lower case", "GET / HTTP/1.1\r\nhost: example.com:8080\r\n\r\n", "example.com:8080"),
                argumentSet("IPv4 with port", "GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n", "10.0.0.1:80"),
                argumentSet("IPv6 literal", "GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", "[2001:db8::1]"));
    }

    @ParameterizedTest
    @MethodSource("acceptedHosts")
    void acceptedHost(String raw, String host) throws Exception {
        assertEquals(host, TestSupport.parseRequest(raw, 8192, 16384).request().host());
    }

    /** Names with "_" are dropped (nginx's underscores_in_headers off): never forwarded, never framing. */
    @ParameterizedTest(name = "{0} is dropped")
    @ValueSource(strings = {"Transfer_Encoding: chunked", "Content_Length: 5", "X_Real_IP: 6.6.6.6",
        "X_Forwarded_For: 6.6.6.6"})
    void underscoreNamesAreDropped(String field) throws Exception {
        var parsed = TestSupport.parseRequest(post(field), 8192, 16384);
        for (var f : parsed.request().headers()) {
            assertFalse(f.name().contains("_"), "forwarded " + f.name());
        }
        assertEquals(Body.EMPTY, parsed.body(), "an underscore name never frames the body");
    }

    // ---- 3 body framing (RFC 9112 6) ---------------------------------------------------

    /**
     * A rejected request and the stage that must reject it: {@code HEAD} (the scanner in
     * {@link HeadReader#readHead}: bare CR or LF), {@code PARSE} (field syntax in
     * {@link HttpParser#parseRequest}) or {@code FRAMING} (the Transfer-Encoding /
     * Content-Length decision in {@link HttpParser#requestBody}). Naming the stage keeps a
     * row from passing because an earlier stage happened to reject its input: a framing row
     * whose head died in scanning would test nothing of the framing code.
     */
    static Arguments framing(String fieldLines, TestSupport.Stage stage, int status) {
        return framingRow("POST + " + fieldLines, post(fieldLines), stage, status);
    }

    static Arguments framingRow(String shown, String raw, TestSupport.Stage stage, int status) {
        return argumentSet(show(shown) + " -> " + status + " (" + stage + ")", raw, stage, status);
    }

    static Stream<Arguments> requestFraming() {
        return Stream.of(
                // CL and TE together, in both orders (RFC 9112 6.3 rule 3: smuggling)
                framing("Content-Length: 5\r\nTransfer-Encoding: chunked", FRAMING, 400),
                framing("Transfer-Encoding: chunked\r\nContent-Length: 5", FRAMING, 400),
                framing("Transfer-Encoding: chunked\r\nContent-Length: 0", FRAMING, 400),
                // transfer codings (RFC 9112 6.1, 7; RFC 9110 8.4.1)
                framing("Transfer-Encoding: xchunked", FRAMING, 501),
                framing("Transfer-Encoding: identity", FRAMING, 501),
                framing("Transfer-Encoding: chunked, identity", FRAMING, 501),
                framing("Transfer-Encoding: identity, chunked", FRAMING, 501),
                framing("Transfer-Encoding: gzip", FRAMING, 501),
                framing("Transfer-Encoding: gzip, chunked", FRAMING, 501),
                framing("Transfer-Encoding: chunked, gzip", FRAMING, 400),
                framing("Transfer-Encoding: chunked, chunked", FRAMING, 400),
                framing("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", FRAMING, 400),
                framing("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked", FRAMING, 400),
                framing("Transfer-Encoding: ,chunked", FRAMING, 400),
                framing("Transfer-Encoding: chunked,", FRAMING, 400),
                framing("Transfer-Encoding: chunked, ", FRAMING, 400),
                framing("Transfer-Encoding: chunked;x=y", FRAMING, 400),
                framing("Transfer-Encoding: \"chunked\"", FRAMING, 400),
                framing("Transfer-Encoding: chunk", FRAMING, 501),
                framing("Transfer-Encoding: ", FRAMING, 400),
                framing("Transfer-Encoding: chunked chunked", FRAMING, 400),
                framingRow("HTTP/1.0 + TE chunked", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", FRAMING, 400),
                // Obfuscated values that pass the scanner and the field syntax: only the
                // framing code stands between them and a second reading of the body.
                framing("Transfer-Encoding: \u00a0chunked", FRAMING, 400),
                framing("Transfer-Encoding: chunked\u00a0", FRAMING, 400),
                framing("Transfer-Encoding: chunked\u0085", FRAMING, 400),
                framing("Transfer-Encoding: gzip\u0085chunked", FRAMING, 400),
                framing("Transfer-Encoding: chunked\u00ff", FRAMING, 400),
                // Obfuscated names and values that the field syntax rejects first (RFC 9112 5.1, 5.2; RFC 9110 5.5)
                framingRow(" Transfer-Encoding: (first field)", "POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\n\r\n",
                        PARSE, 400),
                framing(" Transfer-Encoding: chunked", PARSE, 400),
                framing("Transfer-Encoding : chunked", PARSE, 400),
                framing("Transfer-Encoding\t: chunked", PARSE, 400),
                framing("Transfer Encoding: chunked", PARSE, 400),
                framing("Transfer-Encoding:\r\n chunked", PARSE, 400),
                framing("Transfer-Encoding: \u000bchunked", PARSE, 400),
                framing("Transfer-Encoding: \u000cchunked", PARSE, 400),
                // A bare CR or LF never gets past the head scanner (RFC 9112 2.2): these rows are
                // about line endings, not framing, and say so.
                framing("Transfer-Encoding: chunked\r", HEAD, 400),
                framing("X: a\nTransfer-Encoding: chunked", HEAD, 400),
                framing("X: a\rTransfer-Encoding: chunked", HEAD, 400),
                framing("Transfer-Encoding: chunked\n", HEAD, 400),
                // Content-Length = 1*DIGIT, one value (RFC 9110 8.6)
                framing("Content-Length: +5", FRAMING, 400),
                framing("Content-Length: -1", FRAMING, 400),
                framing("Content-Length: 0x5", FRAMING, 400),
                framing("Content-Length: 0o5", FRAMING, 400),
                framing("Content-Length: 1_0", FRAMING, 400),
                framing("Content-Length: 5 5", FRAMING, 400),
                framing("Content-Length: 5,6", FRAMING, 400),
                framing("Content-Length: ", FRAMING, 400),
                framing("Content-Length: 99999999999999999999", FRAMING, 400),
                framing("Content-Length: 9223372036854775808", FRAMING, 400),
                framing("Content-Length: 5e2", FRAMING, 400),
                framing("Content-Length: 5.0", FRAMING, 400),
                framing("Content-Length: 0\r\nContent-Length: 31", FRAMING, 400),
                framing("Content-Length: 5, 5", FRAMING, 400),
                framing("Content-Length: 5\r\nContent-Length: 5", FRAMING, 400),
                framing("Content-Length: \u00a03", FRAMING, 400),
                framing("Content-Length: 3\u0085", FRAMING, 400),
                framing("content-length:\u000c3", PARSE, 400),
                framing("Content-Length: \u000b3", PARSE, 400),
                framing("Content-Length: 3\u000b", PARSE, 400),
                framing("Content-Length: 3\r", HEAD, 400));
    }

    @ParameterizedTest
    @MethodSource("requestFraming")
    void requestBodyFraming(String raw, TestSupport.Stage stage, int status) throws Exception {
        var rejected = TestSupport.rejection(raw);
        assertNotNull(rejected, "accepted");
        assertEquals(stage, rejected.stage(), "rejected by the wrong stage: " + rejected.reason());
        assertEquals(status, rejected.status(), rejected.reason());
    }

    static Stream<Arguments> acceptedFraming() {
        return Stream.of(
                argumentSet("no CL, no TE -> no body", post("X: y"), Body.EMPTY),
                argumentSet("GET without framing -> no body", withFields("X: y"), Body.EMPTY),
                argumentSet("Content-Length: 0 -> a zero length, sent on as such", post("Content-Length: 0"), new Body.Length(0)),
                argumentSet("Content-Length: 5", post("Content-Length: 5"), new Body.Length(5)),
                argumentSet("content-length:\\t5\\t (OWS)", post("content-length:\t5\t"), new Body.Length(5)),
                argumentSet("Content-Length: 007", post("Content-Length: 007"), new Body.Length(7)),
                argumentSet("GET with Content-Length: body kept", withFields("Content-Length: 3"), new Body.Length(3)),
                argumentSet("HTTP/1.0 with Content-Length", "POST / HTTP/1.0\r\nContent-Length: 4\r\n\r\n", new Body.Length(4)),
                argumentSet("Transfer-Encoding: chunked", post("Transfer-Encoding: chunked"), Body.CHUNKED),
                argumentSet("Transfer-Encoding: CHUNKED", post("Transfer-Encoding: CHUNKED"), Body.CHUNKED),
                argumentSet("transfer-encoding: Chunked", post("transfer-encoding: Chunked"), Body.CHUNKED),
                argumentSet("Transfer-Encoding:\\tchunked", post("Transfer-Encoding:\tchunked"), Body.CHUNKED),
                argumentSet("Transfer-Encoding: chunked\\t (trailing OWS)", post("Transfer-Encoding: chunked\t"), Body.CHUNKED),
                argumentSet("Transfer-Encoding:  chunked  (OWS both sides)", post("Transfer-Encoding:  chunked  "), Body.CHUNKED),
                argumentSet("Transfer-Encoding: chunked\\t (trailing OWS)", post("Transfer-Encoding: chunked\t"), Body.CHUNKED),
                argumentSet("Transfer-Encoding:  chunked  (OWS both sides)", post("Transfer-Encoding:  chunked  "), Body.CHUNKED),
                argumentSet("Transfer-Encoding: chunked + Content_Length (dropped)",
                        post("Transfer-Encoding: chunked\r\nContent_Length: 5"), Body.CHUNKED));
    }

    @ParameterizedTest
    @MethodSource("acceptedFraming")
    void acceptedBodyFraming(String raw, Body body) throws Exception {
        assertEquals(body, TestSupport.parseRequest(raw, 8192, 16384).body());
    }

    // ---- 4 chunk-size lines (RFC 9112 7.1.1) -------------------------------------------

    static Stream<Arguments> validChunkLines() {
        return Stream.of(
                argumentSet("5", "5", 5L),
                argumentSet("0", "0", 0L),
                argumentSet("000 (leading zeros)", "000", 0L),
                argumentSet("A (upper-case hex)", "A", 10L),
                argumentSet("ff", "ff", 255L),
                argumentSet("0005", "0005", 5L),
                argumentSet("fffffffffffffff (15 digits)", "fffffffffffffff", 0xfffffffffffffffL),
                argumentSet("5;a=b", "5;a=b", 5L),
                argumentSet("5 ;a", "5 ;a", 5L),
                argumentSet("5\\t;a", "5\t;a", 5L),
                argumentSet("5;a=\"x\\\"y\"", "5;a=\"x\\\"y\"", 5L),
                argumentSet("5; a = b", "5; a = b", 5L),
                argumentSet("5;a;b=c", "5;a;b=c", 5L),
                argumentSet("5;a=\"\"", "5;a=\"\"", 5L));
    }

    @ParameterizedTest
    @MethodSource("validChunkLines")
    void validChunkSize(String line, long size) throws Exception {
        assertEquals(size, Relay.chunkSize(line));
    }

    static Stream<Arguments> invalidChunkLines() {
        return Stream.of(
                "0x5", "+5", "-0", "-5", "5_", " 5", "\t5", "5 x", "", "Z", "g", "1these-bytes-should-not-be-forwarded",
                "f".repeat(16), "5;", "5; ", "5;\u0000", "5;a=b c", "5;a=",
                "5;a=\"x\ny\"", "5;a=\"x", "5;a=\"x\u0000\"", "5 5", "5,a", "5;a b", "\u00a05", "5\u00a0", "5\u000b",
                "5\u0000", "5;=b", "\u00b2", "5\r")
                .map(s -> argumentSet(show(s) + " -> 400", s));
    }

    @ParameterizedTest
    @MethodSource("invalidChunkLines")
    void invalidChunkSize(String line) {
        HttpError e = assertThrows(HttpError.class, () -> Relay.chunkSize(line));
        assertEquals(400, e.status);
    }

    // ---- 5 responses from upstream (RFC 9112 4, 6.3) -----------------------------------

    static Arguments response(String name, String raw) {
        return argumentSet(show(name) + " -> 502", raw);
    }

    static Stream<Arguments> badResponses() {
        return Stream.of(
                response("HTTP/1.1 2000 OK", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/1.1 20 OK", "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/1.1 200OK", "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/1.1 600 X", "HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/1.1 099 X", "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/1.1 2O0 OK", "HTTP/1.1 2O0 OK\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/1.1  200 OK", "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n"),
                response("http/1.1 200 OK", "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/2.0 200 OK", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/1.10 200 OK", "HTTP/1.10 200 OK\r\nContent-Length: 0\r\n\r\n"),
                response("HTTP/0.9 body only, then close", "<html>hello</html>"),
                response("HTTP/0.9 body with lines", "hello\r\nworld\r\n\r\n"),
                response("reason with NUL", "HTTP/1.1 200 O\u0000K\r\nContent-Length: 0\r\n\r\n"),
                response("Content-Length: foo", "HTTP/1.1 200 OK\r\nContent-Length: foo\r\n\r\n"),
                response("Content-Length: -1", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
                response("Content-Length: 5, 5", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
                response("two Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
                response("two equal Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
                response("CL + TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
                response("TE + CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
                response("TE: foo", "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\n"),
                response("TE: chunked, gzip (chunked not last)", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
                response("duplicate TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
                response("TE: chunked, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
                response("HTTP/1.0 with TE", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                response("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
                response("obs-fold in TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"),
                response("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"),
                response("NUL in value", "HTTP/1.1 200 OK\r\nX: a\u0000b\r\nContent-Length: 0\r\n\r\n"),
                response("CR in value", "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n"),
                response("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
                response("line without colon", "HTTP/1.1 200 OK\r\nFoo\r\nContent-Length: 0\r\n\r\n"),
                response("head over 64 KiB", "HTTP/1.1 200 OK\r\n" + ("X: " + "y".repeat(1000) + "\r\n").repeat(66)
                        + "Content-Length: 0\r\n\r\n"),
                response("head cut off by close", "HTTP/1.1 200 OK\r\nContent-Len"));
    }

    @ParameterizedTest
    @MethodSource("badResponses")
    void badResponseIs502(String raw) {
        HttpError e = assertThrows(HttpError.class, () -> TestSupport.responseBody(raw, "GET"));
        assertEquals(502, e.status);
    }

    static Stream<Arguments> responseFraming() {
        return Stream.of(
                argumentSet("HEAD, 200 with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", Body.EMPTY),
                argumentSet("HEAD, 200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD", Body.EMPTY),
                argumentSet("HEAD, 200 without framing", "HTTP/1.1 200 OK\r\n\r\n", "HEAD", Body.EMPTY),
                argumentSet("204 with Content-Length", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", "GET", Body.EMPTY),
                argumentSet("204 chunked", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", Body.EMPTY),
                argumentSet("304 with Content-Length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "GET", Body.EMPTY),
                argumentSet("304 chunked", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", Body.EMPTY),
                argumentSet("100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", "GET", Body.EMPTY),
                argumentSet("103 Early Hints", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "GET", Body.EMPTY),
                argumentSet("200 Content-Length: 5", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", new Body.Length(5)),
                argumentSet("200 Content-Length: 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", new Body.Length(0)),
                argumentSet("lower-case head: Content-Length counts", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "head",
                        new Body.Length(5)),
                argumentSet("200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", Body.CHUNKED),
                argumentSet("200 CHUNKED", "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n", "GET", Body.CHUNKED),
                argumentSet("200 without framing: until close", "HTTP/1.1 200 OK\r\n\r\n", "GET", Body.UNTIL_CLOSE),
                argumentSet("HTTP/1.0 200 without framing", "HTTP/1.0 200 OK\r\n\r\n", "GET", Body.UNTIL_CLOSE),
                argumentSet("status line without reason", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", "GET", new Body.Length(1)),
                argumentSet("status line with empty reason", "HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", "GET", new Body.Length(1)),
                argumentSet("404 Content-Length: 3", "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n", "POST", new Body.Length(3)));
    }

    @ParameterizedTest
    @MethodSource("responseFraming")
    void responseBodyFraming(String raw, String method, Body body) throws Exception {
        assertEquals(body, TestSupport.responseBody(raw, method));
    }

    @Test
    void anHttp10RequestWithoutHostHasNoHost() throws Exception {
        assertNull(TestSupport.parseRequest("GET / HTTP/1.0\r\n\r\n", 8192, 16384).request().host());
    }
}
