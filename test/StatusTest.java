import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * status_listen: /status (nginx's stub_status, then the upstream servers), /status.json and
 * /metrics (parsed here by a tiny exposition-format parser), after a known number of
 * requests and a server that fails.
 */
@Timeout(30)
class StatusTest {

    private static String page(Proxy proxy, String path) throws Exception {
        var r = TestSupport.exchange(proxy.statusAddress().getPort(), "GET " + path + " HTTP/1.1\r\nHost: s\r\n\r\n");
        assertEquals(200, r.status(), path);
        assertEquals("close", r.header("Connection"));
        return r.bodyText();
    }

    /** The page once it satisfies the predicate: the counters of an exchange are added as it ends. */
    private static String await(Proxy proxy, String path, Predicate<String> ready) throws Exception {
        long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
        while (true) {
            String text = page(proxy, path);
            if (ready.test(text)) return text;
            if (System.nanoTime() - deadline > 0) throw new AssertionError("never ready: " + path + "\n" + text);
            Thread.sleep(10);
        }
    }

    /** One sample of the text format: name{labels} value, labels sorted by name. */
    private static final Pattern SAMPLE = Pattern.compile("([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{(.*)})? (\\S+)");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\",?");

    /**
     * A tiny parser of the Prometheus text exposition format: every sample keyed by its name
     * and sorted labels; each family must have its # HELP and # TYPE before its samples.
     */
    static Map<String, Double> parseMetrics(String text) {
        Map<String, Double> samples = new TreeMap<>();
        Set<String> helped = new HashSet<>(), typed = new HashSet<>();
        for (String line : text.split("\n")) {
            if (line.startsWith("# HELP ")) {
                helped.add(line.split(" ")[2]);
            } else if (line.startsWith("# TYPE ")) {
                String[] p = line.split(" ");
                assertTrue(Set.of("counter", "gauge", "histogram").contains(p[3]), line);
                typed.add(p[2]);
            } else {
                Matcher m = SAMPLE.matcher(line);
                assertTrue(m.matches(), "a sample line: " + line);
                String family = m.group(1).replaceAll("_(bucket|sum|count)$", "");
                assertTrue(helped.contains(family) || helped.contains(m.group(1)), "# HELP before " + line);
                assertTrue(typed.contains(family) || typed.contains(m.group(1)), "# TYPE before " + line);
                Map<String, String> labels = new TreeMap<>();
                if (m.group(2) != null) {
                    Matcher l = LABEL.matcher(m.group(2));
                    int end = 0;
                    while (l.find() && l.start() == end) {
                        labels.put(l.group(1), l.group(2));
                        end = l.end();
                    }
                    assertEquals(m.group(2).length(), end, "labels: " + line);
                }
                String key = m.group(1) + labels;
                assertNull(samples.put(key, Double.parseDouble(m.group(3).replace("+Inf", "Infinity"))), "twice: " + key);
            }
        }
        return samples;
    }

    @Test
    void withReusePortANewProcessBindsTheStatusAddressBesideTheOld() throws Exception {
        // The README's restart: the new process starts beside the old one, on the same addresses.
        // status_listen must be shared as listen is, or the new one can't start (and, had it
        // bound listen first, would reset the connections the kernel had queued on it).
        String listen = "127.0.0.1:" + TestSupport.closedPort(), status = "127.0.0.1:" + TestSupport.closedPort();
        try (var backend = new TestSupport.Backend()) {
            Proxy old = TestSupport.proxy(backend.port(), "listen", listen, "status_listen", status, "reuse_port", "on");
            try (Proxy next = TestSupport.proxy(backend.port(), "listen", listen, "status_listen", status, "reuse_port", "on")) {
                assertEquals(old.statusAddress(), next.statusAddress());
                old.close(); // the old one drains and goes: the new one answers on both
                assertTrue(page(next, "/status").startsWith("Active connections: "));
                assertEquals(200, TestSupport.exchange(TestSupport.port(next), "GET / HTTP/1.1\r\nHost: h\r\n\r\n").status());
            } finally {
                old.close(); // if an assertion came first (a second close does nothing more)
            }
        }
    }

    @Test
    void statusJsonAndMetricsAfterKnownRequestsAndAFailedServer() throws Exception {
        int refused = TestSupport.closedPort();
        try (var web = new TestSupport.Backend(); var api = new TestSupport.Backend();
             Proxy proxy = TestSupport.proxy(web.port(),
                     "status_listen", "127.0.0.1:0",
                     "upstream.api", "127.0.0.1:" + refused + ", 127.0.0.1:" + api.port(),
                     "route.api", "/api/ -> api")) {
            int port = TestSupport.port(proxy);
            for (int i = 0; i < 3; i++) {
                assertEquals(200, TestSupport.exchange(port, "GET /" + i + " HTTP/1.1\r\nHost: h\r\n\r\n").status());
            }
            for (int i = 0; i < 2; i++) { // the first tries the refused server, then the other; it is down after
                assertEquals(200, TestSupport.exchange(port, "GET /api/" + i + " HTTP/1.1\r\nHost: h\r\n\r\n").status());
            }
            String webServer = "127.0.0.1:" + web.port(), apiServer = "127.0.0.1:" + api.port();
            String refusedServer = "127.0.0.1:" + refused;

            String status = await(proxy, "/status", t -> t.contains("upstream api " + apiServer + " up")
                    && t.contains(" requests=2 ") && t.contains("upstream default " + webServer + " up") && t.contains(" requests=3 "));
            String[] lines = status.split("\n", -1);
            assertTrue(lines[0].matches("Active connections: \\d+ "), lines[0]);
            assertEquals("server accepts handled requests", lines[1]);
            assertEquals(" 5 5 5 ", lines[2], "accepts handled requests");
            assertTrue(lines[3].matches("Reading: \\d+ Writing: \\d+ Waiting: \\d+ "), lines[3]);
            // idle: 1, or up to 3 where a client's next request came before the last connection was pooled
            assertTrue(lines[4].matches("upstream default " + Pattern.quote(webServer)
                    + " up active=[01] idle=[0-3] requests=3 failures=0 last_error=\"\" last_error_at=- response_time_ms=\\d+"), lines[4]);
            assertTrue(lines[5].matches("upstream api " + Pattern.quote(refusedServer)
                    + " down active=0 idle=0 requests=1 failures=1 last_error=\".*" + refused + ".*\" last_error_at=20\\S+Z response_time_ms=\\d+"),
                    lines[5]);
            assertTrue(lines[6].startsWith("upstream api " + apiServer + " up "), lines[6]);
            assertEquals("", lines[7]);

            String json = page(proxy, "/status.json");
            assertTrue(json.startsWith("{\"connections\":{\"active\":"), json);
            assertTrue(json.contains(",\"accepted\":5,\"handled\":5},\"requests\":5,\"upstreams\":{\"default\":[{\"server\":\""
                    + webServer + "\",\"state\":\"up\","), json);
            assertTrue(json.contains("\"api\":[{\"server\":\"" + refusedServer + "\",\"state\":\"down\",\"active\":0,\"idle\":0,"
                    + "\"requests\":1,\"failures\":1,\"last_error\":\""), json);
            assertTrue(json.contains("{\"server\":\"" + apiServer + "\",\"state\":\"up\""), json);
            assertTrue(json.contains("\"requests\":2,\"failures\":0,\"last_error\":null,\"last_error_at\":null,\"response_time_ms\":"), json);

            Map<String, Double> m = parseMetrics(page(proxy, "/metrics"));
            assertEquals(5.0, m.get("proxy_requests_total{}"), "the status listener's own requests are not counted");
            assertEquals(3.0, m.get("proxy_upstream_requests_total{code=200, group=default, server=" + webServer + "}"));
            assertEquals(2.0, m.get("proxy_upstream_requests_total{code=200, group=api, server=" + apiServer + "}"));
            assertEquals(1.0, m.get("proxy_upstream_requests_total{code=502, group=api, server=" + refusedServer + "}"));
            assertEquals(0.0, m.get("proxy_upstream_up{group=api, server=" + refusedServer + "}"));
            assertEquals(1.0, m.get("proxy_upstream_failures_total{group=api, server=" + refusedServer + "}"));
            assertEquals(3.0, m.get("proxy_upstream_response_seconds_count{group=api}"), "three attempts");
            assertEquals(3.0, m.get("proxy_upstream_response_seconds_bucket{group=api, le=+Inf}"));
            assertEquals(3.0, m.get("proxy_upstream_response_seconds_count{group=default}"));
            double previous = 0;
            for (double le : Counters.Histogram.BOUNDS) {
                Double n = m.get("proxy_upstream_response_seconds_bucket{group=default, le=" + le + "}");
                assertNotNull(n, "bucket " + le);
                assertTrue(n >= previous, "cumulative");
                previous = n;
            }
            assertTrue(m.containsKey("proxy_connections{state=waiting}"));
            assertEquals((double) proxy.buffers().budget(),
                    m.get("proxy_memory_budget_bytes{state=used}") + m.get("proxy_memory_budget_bytes{state=free}"));

            var r = TestSupport.exchange(proxy.statusAddress().getPort(), "GET /nope HTTP/1.1\r\nHost: s\r\n\r\n");
            assertEquals(404, r.status());
            assertEquals(5.0, parseMetrics(page(proxy, "/metrics")).get("proxy_requests_total{}"), "still");
        }
    }

    @Test
    void offByDefaultAndWarnedAboutOffLoopback() throws Exception {
        try (var web = new TestSupport.Backend(); Proxy off = TestSupport.proxy(web.port())) {
            assertNull(off.statusAddress());
        }
        Config wide = TestSupport.config(1, "status_listen", "0.0.0.0:0");
        try (Proxy proxy = Proxy.start(wide)) {
            assertNotNull(proxy.statusAddress());
            TestSupport.awaitText(Path.of(wide.errorLog()), "is not a loopback address");
        }
        Config local = TestSupport.config(1, "status_listen", "127.0.0.1:0");
        try (Proxy proxy = Proxy.start(local)) {
            assertNotNull(proxy.statusAddress());
            TestSupport.awaitText(Path.of(local.errorLog()), "status on 127.0.0.1:");
            assertFalse(Files.readString(Path.of(local.errorLog())).contains("not a loopback"));
        }
    }
}
