import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ConnectException;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The graceful stop, as a service manager does it: the proxy runs as a process of its own
 * and gets SIGTERM (Process.destroy) while requests are in flight.
 */
@Timeout(60)
class ShutdownTest {
    private static final Pattern LISTENING = Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)");
    private static final Pattern STOPPING = Pattern.compile("stopping \\(");
    private static final Pattern STOPPED = Pattern.compile("stopped after \\d+ ms");
    private static final String GET = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n";

    /** Starts the proxy in front of the backend with these extra lines; returns it and its port. */
    private static Child proxy(int upstreamPort, String... lines) throws Exception {
        Path file = Files.createTempFile(TestSupport.TEMP, "shutdown", ".properties");
        // A key given twice is a problem of the file: a listen line of the test's replaces this one.
        boolean listens = java.util.Arrays.stream(lines).anyMatch(l -> l.startsWith("listen "));
        Files.writeString(file, (listens ? "" : "listen = 127.0.0.1:0\n") + "upstream = 127.0.0.1:" + upstreamPort
                + "\naccess_log = off\n" + String.join("\n", lines) + "\n");
        return Child.start(List.of(Child.java(), "-cp", "out", "Proxy", file.toString()));
    }

    private static int port(Child proxy) throws InterruptedException {
        return Integer.parseInt(proxy.awaitStderr(LISTENING, Duration.ofSeconds(20)).group(1));
    }

    /**
     * kill -SIGNAL: what systemd (TERM) and Ctrl-C (INT) send. Not Process.destroy, which
     * also closes our ends of the process's output, and the test wants to read it.
     */
    private static void signal(Child proxy, String signal) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(proxy.process.pid())).start();
        assertTrue(kill.waitFor(5, TimeUnit.SECONDS) && kill.exitValue() == 0, "kill -" + signal);
    }

    /** A backend: /slow waits until the test lets it go; anything else is answered at once. */
    private static TestSupport.Backend held(CountDownLatch go) throws IOException {
        return new TestSupport.Backend((r, out, s) -> {
            if (r.requestLine().startsWith("GET /slow")) go.await(30, TimeUnit.SECONDS);
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nslow done"));
            return true;
        });
    }

    @Test
    void sigtermLetsTheRequestInFlightFinishThenExits0() throws Exception {
        CountDownLatch go = new CountDownLatch(1);
        try (var backend = held(go); Child proxy = proxy(backend.port(), "shutdown_timeout = 20s")) {
            int port = port(proxy);
            try (var idle = new TestSupport.Client(port); var busy = new TestSupport.Client(port)) {
                stopWithOneIdleAndOneBusy(proxy, backend, go, port, idle, busy, () -> {}, () -> {});
            }
            assertEquals(0, proxy.waitFor(Duration.ofSeconds(15)), "a graceful stop exits 0");
            assertTrue(STOPPED.matcher(proxy.stderrText()).find(), "the stop is logged");
            // Every upstream connection ends: an idle pooled one closed by the stop, the
            // slow request's after its response (one connection, if that request reused the pooled one).
            for (int i = 0; i < backend.connections.get(); i++) backend.nextEnded();
        }
    }

    @Test
    void overTlsTheRequestInFlightEndsWholeWithCloseNotifyAndTheIdleConnectionIsClosedAtOnce() throws Exception {
        Path dir = Files.createTempDirectory(TestSupport.TEMP, "tls");
        Path cert = dir.resolve("c.pem"), key = dir.resolve("c.key");
        TlsTest.selfSigned("ec", "ec_paramgen_curve:P-256", "localhost", "DNS:localhost", cert, key);
        CountDownLatch go = new CountDownLatch(1);
        try (var backend = held(go); Child proxy = proxy(backend.port(), "listen = 127.0.0.1:0 ssl",
                "ssl_certificate = " + cert, "ssl_certificate_key = " + key, "shutdown_timeout = 20s")) {
            int port = port(proxy);
            // TLS 1.2, where close_notify is a record of its own type (alert, 0x15) on the wire.
            var idleTcp = new TlsTest.Tapped(port);
            var busyTcp = new TlsTest.Tapped(port);
            try (var idle = new TestSupport.Client(TlsTest.connect(idleTcp, "localhost", "TLSv1.2", cert));
                 var busy = new TestSupport.Client(TlsTest.connect(busyTcp, "localhost", "TLSv1.2", cert))) {
                stopWithOneIdleAndOneBusy(proxy, backend, go, port, idle, busy,
                        () -> assertEquals(0x15, last(idleTcp.recordTypes()), "with close_notify: " + idleTcp.recordTypes()),
                        () -> assertEquals(0x15, last(busyTcp.recordTypes()), "with close_notify after the response: "
                                + busyTcp.recordTypes()));
            }
            assertEquals(0, proxy.waitFor(Duration.ofSeconds(15)), "a graceful stop exits 0");
            assertTrue(STOPPED.matcher(proxy.stderrText()).find(), "the stop is logged");
        }
    }

    /**
     * The stop's story, plain or over TLS: one keep-alive client served and now idle, one
     * waiting for a slow response. SIGTERM closes the idle one at once and refuses new
     * connections; the busy one then gets its whole response, told that the connection
     * ends, and the close. idleClosed and busyClosed: what else to check as each closes.
     */
    private static void stopWithOneIdleAndOneBusy(Child proxy, TestSupport.Backend backend, CountDownLatch go,
            int port, TestSupport.Client idle, TestSupport.Client busy, Runnable idleClosed, Runnable busyClosed)
            throws Exception {
        assertEquals(200, idle.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n").read().status());
        busy.send(GET);
        backend.next(); // the first request
        backend.next(); // the slow one has reached the backend: it is in flight

        signal(proxy, "TERM");
        proxy.awaitStderr(STOPPING, Duration.ofSeconds(10));
        assertTrue(idle.closedByPeer(), "an idle keep-alive connection is closed at once");
        idleClosed.run();
        assertThrows(ConnectException.class, () -> new Socket("127.0.0.1", port).close(), "no longer accepting");

        go.countDown();
        var resp = busy.read();
        assertEquals(200, resp.status());
        assertEquals("slow done", resp.bodyText(), "the whole response");
        assertEquals("close", resp.header("Connection"), "a keep-alive client is told the connection ends");
        assertTrue(busy.closedByPeer(), "then it is closed");
        busyClosed.run();
    }

    private static int last(List<Integer> records) {
        return records.isEmpty() ? -1 : records.get(records.size() - 1);
    }

    @Test
    void afterShutdownTimeoutWhatIsLeftIsClosedAndTheExitIsStillClean() throws Exception {
        TestSupport.Handler webSocket = (r, out, s) -> {
            if (r.requestLine().startsWith("GET /ws")) {
                out.write(TestSupport.bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        + "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"));
                out.flush();
                s.getInputStream().readAllBytes(); // a tunnel that stays open until the proxy closes it
                return false;
            }
            Thread.sleep(30_000); // a request that is never answered in time
            return false;
        };
        try (var backend = new TestSupport.Backend(webSocket); Child proxy = proxy(backend.port(), "shutdown_timeout = 1s")) {
            int port = port(proxy);
            var stuck = new TestSupport.Client(port);
            var tunnel = new TestSupport.Client(port);
            tunnel.send("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n");
            assertTrue(TestSupport.readHead(tunnel.in).startsWith("HTTP/1.1 101"));
            stuck.send(GET);
            backend.next();
            backend.next(); // both have reached the backend

            long start = System.nanoTime();
            signal(proxy, "TERM");
            assertTrue(tunnel.closedByPeerOrReset(), "the WebSocket tunnel is closed at the timeout");
            assertTrue(stuck.closedByPeerOrReset(), "so is the request that got no answer in time");
            assertEquals(0, proxy.waitFor(Duration.ofSeconds(10)), "the exit is clean all the same");
            long ms = (System.nanoTime() - start) / 1_000_000;
            // At once: the request waiting for its response does not wait out read_timeout (90 s)
            // while the stop waits for it (the lingering time and a second more).
            assertTrue(ms >= 900 && ms < 2_900, "ended after shutdown_timeout (1 s), in " + ms + " ms");
            String log = proxy.stderrText();
            assertTrue(log.contains("shutdown_timeout: closed 2 connection(s) still open"), log);
            assertTrue(log.contains("response cut short: closed at the end of shutdown_timeout"), log);
            assertTrue(!log.contains("failed"), "no fault of the upstream's: " + log);
            assertTrue(STOPPED.matcher(log).find(), log);
            stuck.close();
            tunnel.close();
        }
    }

    @Test
    void aConnectCutAtTheEndOfShutdownTimeoutIsNoFaultOfTheServers() throws Exception {
        // In the same JVM: the request waits to connect to a server whose accept queue is full
        // (connect_timeout 20s) when the stop's shutdown_timeout (300ms) runs out.
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        try (ServerSocket full = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            List<java.net.Socket> fillers = TestSupport.fillAcceptQueue(full);
            try {
                Proxy proxy = TestSupport.proxy(full.getLocalPort(), "connect_timeout", "20s", "shutdown_timeout", "300ms",
                        "error_log", errors.toString() + " info");
                try (var c = new TestSupport.Client(TestSupport.port(proxy))) {
                    c.send(GET);
                    assertTrue(eventuallyOneInFlight(proxy), "the request is in flight");
                    long start = System.nanoTime();
                    proxy.stop("test");
                    long ms = (System.nanoTime() - start) / 1_000_000;
                    assertTrue(ms < 2_000, "the stop ends at shutdown_timeout, in " + ms + " ms");
                    assertTrue(c.closedByPeerOrReset());
                } finally {
                    proxy.close();
                }
                String log = TestSupport.awaitText(errors, "stopped after");
                assertTrue(log.contains("closed at the end of shutdown_timeout"), log);
                assertTrue(!log.contains("marked down") && !log.contains("trying the next server") && !log.contains("502"),
                        "no fault of the server's: " + log);
            } finally {
                for (var f : fillers) f.close();
            }
        }
    }

    private static boolean eventuallyOneInFlight(Proxy proxy) throws InterruptedException {
        long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
        while (proxy.connections().count() < 1 && System.nanoTime() - deadline < 0) Thread.sleep(5);
        return proxy.connections().count() == 1;
    }

    @Test
    void ctrlCStopsTheSameWay() throws Exception {
        try (var backend = new TestSupport.Backend(); Child proxy = proxy(backend.port())) {
            int port = port(proxy);
            assertEquals(200, TestSupport.exchange(port, GET).status());
            signal(proxy, "INT");
            assertEquals(0, proxy.waitFor(Duration.ofSeconds(15)));
            assertTrue(STOPPED.matcher(proxy.stderrText()).find());
        }
    }

    @Test
    void aStoppedProxyPoolsNoUpstreamConnection() throws Exception {
        // In the same JVM: a connection given back after the stop began is closed, not kept.
        CountDownLatch go = new CountDownLatch(1);
        try (var backend = held(go)) {
            Proxy proxy = TestSupport.proxy(backend.port());
            try (var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send(GET);
                backend.next();
                proxy.close(); // the stop begins with the exchange in flight
                go.countDown();
                var resp = client.read();
                assertEquals(200, resp.status());
                assertEquals("close", resp.header("Connection"));
                backend.nextEnded(); // the upstream connection was closed, not pooled
                assertTrue(client.closedByPeer());
            } finally {
                proxy.close();
            }
        }
    }
}
