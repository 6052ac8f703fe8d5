import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * The access log as tools read it: nginx's combined format by default, log_format with
 * nginx's variables, the statuses nginx logs (499 for a client that left), $request_id the
 * same upstream and in the log, and goaccess reading the file.
 */
@Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class AccessLogTest {
    /** nginx's combined format, field by field (an oracle written from nginx's documentation). */
    static final Pattern COMBINED = Pattern.compile("^(?<addr>\\S+) - (?<user>\\S+) \\[(?<time>\\d\\d/\\w{3}/\\d{4}:\\d\\d:\\d\\d:\\d\\d [+-]\\d{4})] "
            + "\"(?<request>[^\"]*)\" (?<status>\\d{3}) (?<bytes>\\d+) \"(?<referer>[^\"]*)\" \"(?<agent>[^\"]*)\"$");

    /** Combined, then timings, the upstream, and the request id: what a user adds to see where time went. */
    static final String TIMED = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "
            + "\"$http_referer\" \"$http_user_agent\" $request_time \"$upstream_addr\" \"$upstream_status\" "
            + "$upstream_response_time $request_id $host $time_iso8601";
    static final Pattern TIMED_LINE = Pattern.compile(COMBINED.pattern().replace("$", "")
            + " (?<rt>\\d+\\.\\d{3}) \"(?<uaddr>[^\"]*)\" \"(?<ustatus>[^\"]*)\" (?<urt>\\S+) (?<id>[0-9a-f]{32}) "
            + "(?<host>\\S+) (?<iso>\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d[+-]\\d\\d:\\d\\d)$");

    @Test
    void a200A404A502AndA499AreCombinedLines() throws Exception {
        List<String> lines = fourExchanges();
        List<Matcher> m = new ArrayList<>();
        for (String line : lines) {
            Matcher one = COMBINED.matcher(line);
            assertTrue(one.matches(), "combined: " + line);
            m.add(one);
        }
        assertEquals(List.of("200", "404", "502", "499"), m.stream().map(x -> x.group("status")).toList());
        assertEquals(List.of("5", "4", "16", "0"), m.stream().map(x -> x.group("bytes")).toList(),
                "$body_bytes_sent: the body only; the proxy's own 502 page counts, as nginx's does");
        assertEquals("GET /ok?q=1 HTTP/1.1", m.get(0).group("request"));
        assertEquals("alice", m.get(0).group("user"), "$remote_user: the Basic user name, as nginx logs it");
        assertEquals("-", m.get(1).group("user"));
        assertEquals("http://example.com/\\x22from\\x22", m.get(0).group("referer"), "escaped as nginx does");
        assertEquals("t\\xE9st/1.0", m.get(0).group("agent"), "a byte outside ASCII is \\xHH");
        assertEquals("-", m.get(1).group("agent"), "no User-Agent: -");
    }

    @Test
    void aCustomLogFormatHasTheTimingsTheUpstreamAndTheRequestId() throws Exception {
        try (var backend = new Backend()) {
            List<String> lines = fourExchanges(backend, "log_format", TIMED);
            List<Matcher> m = new ArrayList<>();
            for (String line : lines) {
                Matcher one = TIMED_LINE.matcher(line);
                assertTrue(one.matches(), "log_format: " + line);
                m.add(one);
            }
            String upstream = "127.0.0.1:" + backend.port();
            assertEquals(List.of("200", "404", "502", "499"), m.stream().map(x -> x.group("status")).toList());
            assertEquals(List.of(upstream, upstream, upstream, upstream), m.stream().map(x -> x.group("uaddr")).toList(),
                    "$upstream_addr: the server that answered (the 499's too: it did answer)");
            assertEquals(List.of("200", "404", "502", "200"), m.stream().map(x -> x.group("ustatus")).toList(),
                    "$upstream_status: what the server said; 502 for a response that was no HTTP, as nginx logs it");
            for (Matcher x : m) {
                assertTrue(x.group("urt").matches("\\d+\\.\\d{3}"), x.group("urt"));
                assertTrue(Double.parseDouble(x.group("urt")) <= Double.parseDouble(x.group("rt")), x.group());
                assertEquals("a.example", x.group("host"), "$host: the name, lowercased, without the port");
            }
            assertTrue(Double.parseDouble(m.get(3).group("rt")) >= 0.1, "the 499 waited for the upstream: " + m.get(3).group());
            assertEquals(4, new HashSet<>(m.stream().map(x -> x.group("id")).toList()).size(), "a new $request_id each time");
        }
    }

    @Test
    void anUnreachableUpstreamIsLoggedAsNginxDoes() throws Exception {
        Path log = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        int closed = TestSupport.closedPort();
        try (var proxy = TestSupport.proxy(closed, "access_log", log.toString(), "log_format",
                "$status $upstream_addr $upstream_status $upstream_response_time")) {
            assertEquals(502, TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status());
            String line = TestSupport.awaitLines(log, 1).strip();
            assertTrue(line.matches("502 127\\.0\\.0\\.1:" + closed + " 502 \\d+\\.\\d{3}"), line);
        }
    }

    @Test
    void requestIdIsTheSameUpstreamAndInTheLogAndNewForEachRequest() throws Exception {
        Path log = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "access_log", log.toString(),
                     "log_format", "$request_id \"$request\"", "header.X-Request-ID", "$request_id");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /1 HTTP/1.1\r\nHost: a\r\nX-Request-ID: forged\r\n\r\n");
            assertEquals(200, client.read().status());
            client.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status());
            List<String> sent = List.of(backend.next().header("X-Request-ID"), backend.next().header("X-Request-ID"));
            List<String> logged = TestSupport.awaitLines(log, 2).lines().toList();
            for (int i = 0; i < 2; i++) {
                assertTrue(sent.get(i).matches("[0-9a-f]{32}"), "32 hex digits, as nginx's: " + sent.get(i));
                assertEquals(sent.get(i) + " \"GET /" + (i + 1) + " HTTP/1.1\"", logged.get(i), "the same id in the log");
            }
            assertNotEquals(sent.get(0), sent.get(1), "each request has its own, also on one connection");
        }
    }

    @Test
    void aResponseCutShortIsLoggedWithTheBodyBytesThatWentOut() throws Exception {
        // The upstream promises 100,000 bytes, sends 30,000 and closes: the client gets those
        // and a connection that ends early, and $body_bytes_sent is the 30,000 (as nginx logs
        // it), not 0 nor the promised length.
        Path log = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (var backend = new TestSupport.Backend((r, out, s) -> {
                 out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + "x".repeat(30_000)));
                 out.flush();
                 return false;
             });
             var proxy = TestSupport.proxy(backend.port(), "access_log", log.toString(), "log_format", "$status $body_bytes_sent");
             var client = new Socket("127.0.0.1", TestSupport.port(proxy))) {
            client.getOutputStream().write(TestSupport.bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
            byte[] got = readUntilEnd(client);
            String text = TestSupport.text(got);
            int body = text.indexOf("\r\n\r\n") + 4;
            assertTrue(text.startsWith("HTTP/1.1 200 ") && body > 4, text.substring(0, Math.min(200, text.length())));
            assertEquals(30_000, got.length - body, "the client got what the upstream sent, then the end");
            assertEquals("200 30000", TestSupport.awaitLines(log, 1).strip());
        }
    }

    /** Everything the peer sends until it closes or resets the connection. */
    private static byte[] readUntilEnd(Socket s) throws java.io.IOException {
        var all = new java.io.ByteArrayOutputStream();
        byte[] b = new byte[8192];
        try {
            for (int n; (n = s.getInputStream().read(b)) > 0; ) all.write(b, 0, n);
        } catch (java.net.SocketException reset) {
            // a reset after the bytes: the end, too
        }
        return all.toByteArray();
    }

    @Test
    void anUnknownVariableInLogFormatIsAConfigurationError() {
        var e = assertThrows(Config.Invalid.class,
                () -> Config.from(Map.of("log_format", "$remote_addr $upstream_adr"), "my.properties"));
        assertTrue(e.getMessage().startsWith("my.properties: key 'log_format': unknown variable $upstream_adr"), e.getMessage());
    }

    /** goaccess, the tool the issue names: it reads the default lines (and the timed ones) as they are. */
    @Test
    @EnabledIf("goaccessInstalled")
    void goaccessReadsTheLines() throws Exception {
        Path combined = Files.createTempFile(TestSupport.TEMP, "combined", ".log");
        Files.write(combined, fourExchanges());
        assertEquals(List.of(4, 4, 0), goaccess(combined, "--log-format=COMBINED"));

        Path timed = Files.createTempFile(TestSupport.TEMP, "timed", ".log");
        try (var backend = new Backend()) {
            Files.write(timed, fourExchanges(backend, "log_format", TIMED));
        }
        // %T: $request_time, in seconds with milliseconds; %^: a field goaccess skips.
        assertEquals(List.of(4, 4, 0), goaccess(timed, "--log-format=%h %^[%d:%t %^] \"%r\" %s %b \"%R\" \"%u\" %T %^",
                "--date-format=%d/%b/%Y", "--time-format=%H:%M:%S"));
    }

    static boolean goaccessInstalled() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, "goaccess"))) return true;
        }
        return false;
    }

    /** Runs goaccess on the file; returns its total, valid and failed request counts. */
    private static List<Integer> goaccess(Path log, String... format) throws Exception {
        Path report = Files.createTempFile(TestSupport.TEMP, "goaccess", ".json");
        List<String> command = new ArrayList<>(List.of("goaccess", log.toString(), "--no-global-config", "-o", report.toString()));
        command.addAll(List.of(format));
        try (Child goaccess = Child.start(new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))))) {
            assertTrue(goaccess.process.waitFor(30, TimeUnit.SECONDS), "goaccess finished");
            assertEquals(0, goaccess.process.exitValue(), "goaccess accepted " + log + ":\n" + Files.readString(log));
        }
        String json = Files.readString(report);
        List<Integer> counts = new ArrayList<>();
        for (String key : List.of("total_requests", "valid_requests", "failed_requests")) {
            Matcher m = Pattern.compile("\"" + key + "\": *(\\d+)").matcher(json);
            assertTrue(m.find(), key + " in " + json);
            counts.add(Integer.parseInt(m.group(1)));
        }
        return counts;
    }

    // ---- the four exchanges ---------------------------------------------------------------

    /**
     * A backend for the four outcomes: /ok is 200 "Hello", /missing is 404 "nope", /garbage
     * is no HTTP at all (the proxy answers 502), and /slow answers only once the test lets it
     * (after the client has gone).
     */
    record Backend(TestSupport.Backend backend, CountDownLatch answerSlow) implements AutoCloseable {
        Backend() throws java.io.IOException {
            this(new TestSupport.Backend(), new CountDownLatch(1));
            backend.handler = (r, out, s) -> {
                String target = r.requestLine().split(" ")[1];
                if (target.startsWith("/ok")) out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello"));
                if (target.equals("/missing")) out.write(TestSupport.bytes("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"));
                if (target.equals("/garbage")) out.write(TestSupport.bytes("HTTP/1.1 2000 OK\r\n\r\n"));
                if (target.equals("/slow")) {
                    assertTrue(answerSlow.await(10, TimeUnit.SECONDS), "the test let /slow answer");
                    out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello"));
                }
                return !target.equals("/garbage");
            };
        }

        int port() {
            return backend.port();
        }

        @Override
        public void close() throws java.io.IOException {
            backend.close();
        }
    }

    static List<String> fourExchanges(String... keyValues) throws Exception {
        try (var backend = new Backend()) {
            return fourExchanges(backend, keyValues);
        }
    }

    /** A 200, a 404 from the upstream, a 502, and a client that leaves before its response: the log's lines. */
    static List<String> fourExchanges(Backend backend, String... keyValues) throws Exception {
        Path log = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        List<String> config = new ArrayList<>(List.of("access_log", log.toString()));
        config.addAll(List.of(keyValues));
        try (var proxy = TestSupport.proxy(backend.port(), config.toArray(String[]::new))) {
            int port = TestSupport.port(proxy);
            var ok = TestSupport.exchange(port, "GET /ok?q=1 HTTP/1.1\r\nHost: a.example:8080\r\n"
                    + "Authorization: Basic YWxpY2U6c2VjcmV0\r\nReferer: http://example.com/\"from\"\r\nUser-Agent: t\u00e9st/1.0\r\n\r\n");
            assertEquals(200, ok.status());
            // Each line is written after its response: wait for it, so that the lines come in this order.
            TestSupport.awaitLines(log, 1);
            assertEquals(404, TestSupport.exchange(port, "GET /missing HTTP/1.1\r\nHost: a.example\r\n\r\n").status());
            TestSupport.awaitLines(log, 2);
            assertEquals(502, TestSupport.exchange(port, "GET /garbage HTTP/1.1\r\nHost: a.example\r\n\r\n").status());
            TestSupport.awaitLines(log, 3);

            // The client asks, and leaves (a reset) while the upstream is still thinking; the
            // proxy finds out when it passes the response on. nginx logs that as 499.
            try (Socket s = new Socket("127.0.0.1", port)) {
                s.getOutputStream().write(TestSupport.bytes("GET /slow HTTP/1.1\r\nHost: a.example\r\n\r\n"));
                for (int i = 0; i < 3; i++) backend.backend().next(); // the three before it
                assertEquals("/slow", backend.backend().next().requestLine().split(" ")[1], "the request reached the upstream");
                Thread.sleep(100); // the thing measured: $request_time of a request that waited
                s.setSoLinger(true, 0);
            }
            backend.answerSlow.countDown();
            return TestSupport.awaitLines(log, 4).lines().toList();
        }
    }
}
