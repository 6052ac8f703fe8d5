import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.net.SocketException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Limits: sizes answered with their status, and max_connections holding under a crowd. */
@Timeout(30)
class LimitsTest {

    @Test
    void oversizedPartsGetTheirStatus() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(),
                "max_request_line", "100", "max_header_size", "1k", "client_max_body_size", "10")) {
            int port = TestSupport.port(proxy);
            assertEquals(414, TestSupport.exchange(port, "GET /" + "a".repeat(100) + " HTTP/1.1\r\nHost: a\r\n\r\n").status());
            assertEquals(431, TestSupport.exchange(port, "GET / HTTP/1.1\r\nHost: a\r\nX: " + "b".repeat(1000) + "\r\n\r\n").status());
            // With Content-Length, 413 comes before the body is read...
            assertEquals(413, TestSupport.exchange(port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n").status());
            // ...with chunked, at the crossing.
            assertEquals(413, TestSupport.exchange(port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n").status());
            assertEquals(200, TestSupport.exchange(port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789").status());
            assertEquals("0123456789", TestSupport.text(backend.next().body()));
            assertNull(backend.received.poll(200, TimeUnit.MILLISECONDS), "no oversized request was completed upstream");
        }
    }

    @Test
    void headerFieldsAreBoundedByTheHeadSizeOrMaxHeaderFields() throws Exception {
        StringBuilder many = new StringBuilder("GET / HTTP/1.1\r\nHost: a\r\n");
        for (int i = 0; i < 200; i++) many.append("X").append(i).append(": 1\r\n");
        String head = many + "\r\n";
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port())) {
            assertEquals(200, TestSupport.exchange(TestSupport.port(proxy), head).status(), "200 small fields, as nginx takes");
            assertEquals(200, backend.next().head().split("\r\n").length - 6, "all forwarded (beside the line, Host and 4 of ours)");
        }
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(), "max_header_fields", "100")) {
            assertEquals(431, TestSupport.exchange(TestSupport.port(proxy), head).status(), "more than max_header_fields");
            assertNull(backend.received.poll(200, TimeUnit.MILLISECONDS));
        }
    }

    @Test
    void aRequestLineOf8000OctetsIsSupportedByDefault() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port())) {
            String target = "/" + "x".repeat(7990);
            assertEquals(200, TestSupport.exchange(TestSupport.port(proxy), "GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n").status());
            assertEquals("GET " + target + " HTTP/1.1", backend.next().requestLine());
        }
    }

    @Test
    void maxConnectionsHoldsWithTenTimesMoreClientsTrying() throws Exception {
        int max = 10;
        CountDownLatch go = new CountDownLatch(1);
        TestSupport.Handler held = (r, out, sock) -> {
            if (r.requestLine().startsWith("GET /held ")) assertTrue(go.await(20, TimeUnit.SECONDS));
            return TestSupport.HELLO.handle(r, out, sock);
        };
        try (var backend = new TestSupport.Backend(held)) {
            Config config = TestSupport.config(backend.port(), "max_connections", Integer.toString(max));
            try (var proxy = Proxy.start(config)) {
                int port = TestSupport.port(proxy);
                List<TestSupport.Client> admitted = new ArrayList<>();
                try {
                    for (int i = 0; i < max; i++) {
                        var c = new TestSupport.Client(port);
                        admitted.add(c);
                        c.send("GET /held HTTP/1.1\r\nHost: a\r\n\r\n");
                        backend.next(); // busy: its request waits at the upstream (idle ones would make room)
                    }
                    long start = System.nanoTime();
                    for (int i = 0; i < 10 * max; i++) {
                        try (var extra = new TestSupport.Client(port)) {
                            extra.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                            var resp = extra.read();
                            assertEquals(503, resp.status(), "an extra client is refused");
                            assertEquals("close", resp.header("Connection"));
                            // Closing with the request unread would send RST, which may erase the
                            // 503 on its way (RFC 9112 9.6): the refusal must end with FIN.
                            try {
                                assertEquals(-1, extra.in.read(), "after the 503, an orderly end of stream");
                                extra.send("more"); // what a client may still send is read and dropped
                                assertEquals(-1, extra.in.read(), "the bytes sent after the 503 are not answered by RST");
                            } catch (SocketException reset) {
                                fail("the 503 was followed by a reset, not a FIN: " + reset.getMessage());
                            }
                        }
                    }
                    long took = (System.nanoTime() - start) / 1_000_000;
                    assertTrue(took < 5000, "100 refusals took " + took + " ms");
                    go.countDown();
                    for (var c : admitted) assertEquals(200, c.read().status());
                    for (var c : admitted) {
                        c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                        assertEquals(200, c.read().status(), "admitted clients keep working");
                    }
                    // The error log says it: the first refusal at once, then once a second with
                    // the count since. All 100 are counted, in a line or two a second at most.
                    long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
                    List<Long> counts;
                    while ((counts = refusalCounts(config)).stream().mapToLong(Long::longValue).sum() < 10 * max
                            && System.nanoTime() - deadline < 0) {
                        Thread.sleep(20);
                    }
                    String log = String.join("\n", TestSupport.errorLog(config));
                    assertEquals(10 * max, counts.stream().mapToLong(Long::longValue).sum(), log);
                    assertEquals(1L, counts.get(0), "the first refusal is said at once: " + log);
                    assertTrue(counts.size() <= took / 1000 + 3, "one line a second at most, not one a refusal: " + log);
                } finally {
                    for (var c : admitted) c.close();
                }
                assertEquals(max, backend.received.size(), "only admitted clients reached the upstream (their second"
                        + " requests: the first were taken above)");
            }
        }
    }

    @Test
    void atMaxConnectionsTheConnectionsIdleLongestMakeRoomForNewOnes() throws Exception {
        // nginx's "worker_connections are not enough, reusing connections": a crowd of idle
        // keep-alive connections must not lock new clients out for keepalive_timeout.
        int max = 4;
        try (var backend = new TestSupport.Backend()) {
            Config config = TestSupport.config(backend.port(), "max_connections", Integer.toString(max));
            try (var proxy = Proxy.start(config)) {
                int port = TestSupport.port(proxy);
                List<TestSupport.Client> idle = new ArrayList<>();
                try {
                    for (int i = 0; i < max; i++) {
                        var c = new TestSupport.Client(port);
                        idle.add(c);
                        assertEquals(200, c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n").read().status());
                        long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
                        while (proxy.idle().size() < i + 1 && System.nanoTime() - deadline < 0) Thread.sleep(5);
                    }
                    assertEquals(max, proxy.idle().size(), "all of them idle now");
                    var resp = TestSupport.exchange(port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
                    assertEquals(200, resp.status(), "the new client is served, not refused");
                    assertTrue(idle.get(0).closedByPeerOrReset(), "the connection idle longest made room");
                    String log = TestSupport.awaitText(java.nio.file.Path.of(config.errorLog()),
                            "max_connections reached: closed ");
                    assertTrue(log.contains("[warn] max_connections reached: closed "), log);
                    assertTrue(!log.contains("refused"), "none refused: " + log);
                } finally {
                    for (var c : idle) c.close();
                }
            }
        }
    }

    @Test
    void withNoIdleSelectorTheAcceptorStillRefusesAndGoesOn() throws Exception {
        CountDownLatch go = new CountDownLatch(1);
        TestSupport.Handler held = (r, out, sock) -> {
            if (r.requestLine().startsWith("GET /held ")) assertTrue(go.await(20, TimeUnit.SECONDS));
            return TestSupport.HELLO.handle(r, out, sock);
        };
        try (var backend = new TestSupport.Backend(held);
             var proxy = Proxy.start(TestSupport.config(backend.port(), "max_connections", "1"))) {
            int port = TestSupport.port(proxy);
            try (var busy = new TestSupport.Client(port)) {
                busy.send("GET /held HTTP/1.1\r\nHost: a\r\n\r\n");
                backend.next();
                proxy.idle().close(); // its selector closed, as if its thread had ended: no room to make there
                assertEquals(503, TestSupport.exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status());
                go.countDown();
                assertEquals(200, busy.read().status());
            }
            long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
            while (proxy.connections().count() > 0 && System.nanoTime() - deadline < 0) Thread.sleep(5);
            assertEquals(200, TestSupport.exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status(),
                    "the acceptor goes on");
        }
    }

    /** The counts of the error log's "max_connections (N) reached: K connections refused" lines, in order. */
    private static List<Long> refusalCounts(Config config) throws Exception {
        Pattern line = Pattern.compile("\\[warn\\] max_connections \\(\\d+\\) reached: (\\d+) connections? refused$");
        List<Long> counts = new ArrayList<>();
        for (String l : TestSupport.errorLog(config)) {
            Matcher m = line.matcher(l);
            if (m.find()) counts.add(Long.parseLong(m.group(1)));
        }
        return counts;
    }
}
