import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The promises toward the upstream servers ({@link Upstreams}, and the upstream side of
 * {@link ClientConnection}): where requests go (weighted round-robin), when a server is taken
 * out and brought back (max_fails, fail_timeout), how many idle connections are kept
 * (upstream_keepalive), and the timeouts toward a server (connect, send, the WebSocket idle
 * limit). Each is observed from the servers' side: which one got a request, how many
 * connections each accepted.
 */
@Timeout(30)
class UpstreamTest {
    private static final long MS = 1_000_000L;
    private static final String GET = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    /**
     * The health tests send a POST: one that reached a failing server is answered 502 and
     * goes nowhere else, so each request is one turn of the round-robin. (A GET would go on
     * to the next server: NextUpstreamTest.)
     */
    private static final String POST = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";

    /** Answers with its name as the body, so the client sees which server served it. */
    private static TestSupport.Handler named(String name) {
        return (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + name.length() + "\r\n\r\n" + name));
            return true;
        };
    }

    /** Reads the request and hangs up without answering: a server that fails each request. */
    private static final TestSupport.Handler HANG_UP = (r, out, s) -> false;

    private static String servers(TestSupport.Backend... backends) {
        List<String> list = new ArrayList<>();
        for (var b : backends) list.add("127.0.0.1:" + b.port());
        return String.join(", ", list);
    }

    // ---- choice ------------------------------------------------------------------------

    @Test
    void weightedRoundRobinIsSmoothAndProportional() throws Exception {
        try (var a = new TestSupport.Backend(named("a")); var b = new TestSupport.Backend(named("b"));
             var proxy = TestSupport.proxy(0, "upstream", "127.0.0.1:" + a.port() + " weight=3, 127.0.0.1:" + b.port())) {
            StringBuilder order = new StringBuilder();
            for (int i = 0; i < 8; i++) order.append(TestSupport.exchange(TestSupport.port(proxy), GET).bodyText());
            // nginx's smooth weighted round-robin spreads the heavy server's turns out: with
            // weights 3 and 1 the cycle is a a b a, not a a a b.
            assertEquals("aabaaaba", order.toString());
            assertEquals(6, a.received.size());
            assertEquals(2, b.received.size());
        }
    }

    // ---- health: max_fails, fail_timeout -----------------------------------------------

    @Test
    void aServerIsTakenOutAfterMaxFailsFailures() throws Exception {
        try (var dead = new TestSupport.Backend(HANG_UP); var live = new TestSupport.Backend();
             var proxy = TestSupport.proxy(0, "upstream", servers(dead, live), "max_fails", "2", "fail_timeout", "30s")) {
            for (int i = 0; i < 8; i++) TestSupport.exchange(TestSupport.port(proxy), POST);
            // Turns alternate: the dead server fails the 1st and 3rd requests, then is out.
            assertEquals(2, dead.connections.get(), "out after exactly max_fails failures");
            assertEquals(6, live.received.size());
        }
    }

    @Test
    void aServerTakenOutComesBackAfterFailTimeout() throws Exception {
        long failTimeout = 400;
        try (var dead = new TestSupport.Backend(HANG_UP); var live = new TestSupport.Backend();
             var proxy = TestSupport.proxy(0, "upstream", servers(dead, live),
                     "max_fails", "1", "fail_timeout", failTimeout + "ms")) {
            int port = TestSupport.port(proxy);
            long start = System.nanoTime(); // before the failure, so the time out is measured from no later
            assertEquals(502, TestSupport.exchange(port, POST).status(), "the first turn is the dead server's");
            assertEquals(1, dead.connections.get());
            // Keep asking until the dead server is tried again; meanwhile the live one answers.
            int answered = 0;
            while (dead.connections.get() == 1 && System.nanoTime() - start < 5000 * MS) {
                if (TestSupport.exchange(port, POST).status() == 200) answered++;
                Thread.sleep(20); // pace the polling
            }
            long back = (System.nanoTime() - start) / MS;
            assertEquals(2, dead.connections.get(), "the server was tried again");
            assertTrue(back >= failTimeout, "tried again after " + back + " ms, before fail_timeout");
            assertTrue(back < failTimeout + 3000, "tried again only after " + back + " ms");
            assertTrue(answered > 0, "the live server answered while the dead one was out");
        }
    }

    @Test
    void maxFailsZeroNeverTakesAServerOut() throws Exception {
        try (var dead = new TestSupport.Backend(HANG_UP); var live = new TestSupport.Backend();
             var proxy = TestSupport.proxy(0, "upstream", servers(dead, live), "max_fails", "0")) {
            for (int i = 0; i < 6; i++) TestSupport.exchange(TestSupport.port(proxy), POST);
            assertEquals(3, dead.connections.get(), "every other request still goes to the failing server");
            assertEquals(3, live.received.size());
        }
    }

    @Test
    void whenEveryServerIsOutTheOneOutLongestIsTried() throws Exception {
        try (var a = new TestSupport.Backend(HANG_UP); var b = new TestSupport.Backend(HANG_UP);
             var proxy = TestSupport.proxy(0, "upstream", servers(a, b), "max_fails", "1", "fail_timeout", "30s")) {
            int port = TestSupport.port(proxy);
            // a fails, then b: both are out, a for longer.
            String[] expected = {"1 0", "1 1", "2 1", "2 2", "3 2"};
            for (String e : expected) {
                assertEquals(502, TestSupport.exchange(port, POST).status());
                assertEquals(e, a.connections.get() + " " + b.connections.get(),
                        "accepts of a and b: with every server out, the one out longest is tried anyway");
            }
        }
    }

    // ---- the pool: upstream_keepalive --------------------------------------------------

    @Test
    void aConnectionIsClosedAfterUpstreamKeepaliveRequests() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "upstream_keepalive_requests", "3");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            for (int i = 0; i < 7; i++) assertEquals(200, client.send(GET).read().status());
            StringBuilder on = new StringBuilder();
            for (int i = 0; i < 7; i++) on.append(backend.next().connection());
            assertEquals("1112223", on.toString(), "three requests a connection, then a new one");
        }
    }

    @Test
    void connectionsIdleNearTheServersOwnTimeoutAreNotUsed() throws Exception {
        // A server that closes a connection idle for 1 s (gunicorn's gthread workers: 2 s).
        TestSupport.Handler closesIdle = (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
            s.setSoTimeout(1000); // the next head must come within 1 s, or the backend closes
            return true;
        };
        String get = GET; // a GET could be sent again; a POST has a rule of its own (below)
        try (var backend = new TestSupport.Backend(closesIdle); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            assertEquals(200, client.send(get).read().status());
            assertEquals(1, backend.next().connection());
            Thread.sleep(300);
            assertEquals(200, client.send(get).read().status());
            assertEquals(1, backend.next().connection(), "idle 0.3 s: reused (no close of the server's seen yet)");
            assertEquals(1, backend.nextEnded(), "the server closes it after 1 s idle");
            Thread.sleep(200); // idle 1.2 s in all
            assertEquals(200, client.send(get).read().status());
            assertEquals(2, backend.next().connection(), "found closed: a new one (the server closes after <= 1.2 s)");
            Thread.sleep(950); // more than 3/4 of 1.2 s: too near the server's close to be used
            assertEquals(200, client.send(get).read().status());
            assertEquals(3, backend.next().connection(), "not used so near the time the server closes it");
            Thread.sleep(300);
            assertEquals(200, client.send(get).read().status());
            assertEquals(3, backend.next().connection(), "idle 0.3 s: still reused");
        }
    }

    @Test
    void bytesAnUpstreamSendsAfterItsResponseNeverReachTheNextRequest() throws Exception {
        // A server that answers a HEAD with its head only, then, once that response is
        // through, sends a response nobody asked for on the same connection. The proxy has
        // pooled the connection by then; the next request, a moment later (the busy path),
        // must not read those bytes as its own response: the check before reuse finds them.
        CountDownLatch clientHasIt = new CountDownLatch(1), strayBytesSent = new CountDownLatch(1);
        TestSupport.Handler strays = (r, out, s) -> {
            if (!r.requestLine().startsWith("HEAD")) return TestSupport.HELLO.handle(r, out, s);
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
            out.flush();
            assertTrue(clientHasIt.await(10, TimeUnit.SECONDS));
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"));
            out.flush(); // on loopback, in the proxy's receive queue when this returns
            strayBytesSent.countDown();
            return true;
        };
        try (var backend = new TestSupport.Backend(strays); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read(true).status());
            clientHasIt.countDown();
            assertTrue(strayBytesSent.await(10, TimeUnit.SECONDS));
            var resp = client.send(GET).read();
            assertEquals("Hello", TestSupport.text(resp.body()), "the GET's own response, not the stray one");
            assertEquals(1, backend.next().connection());
            assertEquals(2, backend.next().connection(), "the connection with stray bytes was not used again");
        }
    }

    @Test
    void aRequestThatCantBeSentAgainTakesNoConnectionIdleForASecond() throws Exception {
        String post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            assertEquals(200, client.send(post).read().status());
            assertEquals(1, backend.next().connection());
            assertEquals(200, client.send(post).read().status());
            assertEquals(1, backend.next().connection(), "idle a moment: reused");
            Thread.sleep(UpstreamPool.ONCE_ONLY_MAX_IDLE.toMillis() + 100);
            assertEquals(200, client.send(post).read().status());
            assertEquals(2, backend.next().connection(), "idle over a second: a POST takes a new connection");
            Thread.sleep(UpstreamPool.ONCE_ONLY_MAX_IDLE.toMillis() + 100);
            assertEquals(200, client.send(GET).read().status());
            assertTrue(backend.next().connection() <= 2, "a GET may take it: it could be sent again");
        }
    }

    @Test
    void thePoolKeepsWhatDemandNeedsThenShrinksToUpstreamKeepalive() throws Exception {
        int concurrent = 4;
        CyclicBarrier allIn = new CyclicBarrier(concurrent);
        TestSupport.Handler together = (r, out, s) -> {
            allIn.await(10, TimeUnit.SECONDS); // answer only once all are in: 4 connections at once
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
            return true;
        };
        try (var backend = new TestSupport.Backend(together);
             var proxy = TestSupport.proxy(backend.port(), "upstream_keepalive", "2")) {
            wave(TestSupport.port(proxy), concurrent);
            assertEquals(4, backend.connections.get());
            // All 4 released connections stay pooled: 4 were in use at once lately, more than
            // upstream_keepalive. The next 4 at once reuse them (a pool fixed at 2, as nginx's,
            // would open 2 more; no pool, 4 more).
            wave(TestSupport.port(proxy), concurrent);
            assertEquals(4, backend.connections.get(), "a steady load opens no new connections");

            // Demand falls: after one window the 4 are still remembered, after two the pool
            // shrinks to upstream_keepalive, closing the longest idle.
            long now = System.nanoTime();
            assertEquals(0, proxy.upstreams().expire(now + UpstreamPool.DEMAND_WINDOW.toNanos()).size());
            var closed = proxy.upstreams().expire(now + 2 * UpstreamPool.DEMAND_WINDOW.toNanos() + 1);
            assertEquals(2, closed.size(), "beyond upstream_keepalive, once demand is gone");
            closed.forEach(Wire::close);
            backend.nextEnded();
            backend.nextEnded();
        }
    }

    @Test
    void idleUpstreamConnectionsAreClosedAfterUpstreamKeepaliveTimeout() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "upstream_keepalive_timeout", "1s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            long start = System.nanoTime();
            assertEquals(200, client.send(GET).read().status());
            backend.nextEnded(); // closed by the proxy, without a request coming to find it dead
            long ms = (System.nanoTime() - start) / 1_000_000;
            assertTrue(ms >= 900 && ms < 3500, "closed after " + ms + " ms (timeout 1 s, looked over once a second)");
        }
    }

    /** n clients at once, each one request; returns once every client connection is closed. */
    private static void wave(int port, int n) throws Exception {
        List<TestSupport.Client> clients = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                var c = new TestSupport.Client(port);
                clients.add(c);
                c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            }
            for (var c : clients) {
                assertEquals(200, c.read().status());
                // The proxy closes after releasing the upstream connection: once this client
                // sees the close, its upstream connection is back in the pool (or closed).
                assertTrue(c.closedByPeer());
            }
        } finally {
            for (var c : clients) c.close();
        }
    }

    @Test
    void upstreamKeepaliveZeroOpensAConnectionPerRequestAndSaysClose() throws Exception {
        try (var backend = new TestSupport.Backend(); // would keep each connection open
             var proxy = TestSupport.proxy(backend.port(), "upstream_keepalive", "0");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            for (int i = 1; i <= 3; i++) {
                client.send(GET);
                assertEquals(200, client.read().status());
                var got = backend.next();
                assertEquals(i, got.connection(), "a new upstream connection for each request");
                assertEquals("close", got.header("Connection"), "the upstream is told the connection ends");
            }
        }
    }

    // ---- timeouts toward the upstream --------------------------------------------------

    @Test
    void connectTimeoutMovesOnToTheNextServer() throws Exception {
        try (ServerSocket full = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
             var live = new TestSupport.Backend()) {
            List<Socket> fillers = TestSupport.fillAcceptQueue(full);
            try (var proxy = TestSupport.proxy(0, "upstream", "127.0.0.1:" + full.getLocalPort() + ", 127.0.0.1:" + live.port(),
                    "connect_timeout", "1s")) {
                long start = System.nanoTime();
                var resp = TestSupport.exchange(TestSupport.port(proxy), GET);
                long took = (System.nanoTime() - start) / MS;
                assertEquals(200, resp.status(), "the next server answers");
                assertEquals(1, live.received.size());
                assertTrue(took >= 900 && took < 3000, "answered after " + took + " ms: connect_timeout first, then on");
            } finally {
                for (Socket s : fillers) s.close();
            }
        }
    }


    @Test
    void anUpstreamThatStopsReadingTheRequestBodyIs504AfterSendTimeout() throws Exception {
        // A server that accepts and never reads: once the socket buffers are full, the
        // proxy's write waits, and send_timeout ends it.
        ServerSocket deaf = new ServerSocket();
        AtomicReference<Socket> accepted = new AtomicReference<>();
        Thread acceptor = null;
        try {
            deaf.setReceiveBufferSize(16 * 1024);
            deaf.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            acceptor = Thread.ofVirtual().start(() -> {
                try {
                    accepted.set(deaf.accept());
                } catch (IOException closed) {
                    // the test is over
                }
            });
            try (var proxy = TestSupport.proxy(deaf.getLocalPort(), "send_timeout", "1s", "client_max_body_size", "0");
                 var client = new TestSupport.Client(TestSupport.port(proxy))) {
                long size = 256L << 20; // far more than any socket buffers hold
                long start = System.nanoTime();
                Thread writer = Thread.ofVirtual().start(() -> {
                    try {
                        client.send("PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: " + size + "\r\n\r\n");
                        byte[] block = new byte[64 * 1024];
                        for (long sent = 0; sent < size; sent += block.length) client.out.write(block);
                    } catch (IOException closed) {
                        // the proxy gave up on this request and closed
                    }
                });
                var resp = client.read();
                long took = (System.nanoTime() - start) / MS;
                assertEquals(504, resp.status());
                assertEquals("close", resp.header("Connection"), "the rest of the body is not read");
                assertTrue(took >= 1000 && took < 4000, "504 after " + took + " ms");
                client.socket.close(); // ends the writer, if it is still blocked
                assertTrue(writer.join(java.time.Duration.ofSeconds(10)));
            }
        } finally {
            deaf.close();
            if (acceptor != null) acceptor.join(10_000);
            if (accepted.get() != null) accepted.get().close();
        }
    }

    @Test
    void readTimeoutIsTheIdleLimitOfAWebSocketTunnel() throws Exception {
        CountDownLatch upstreamClosed = new CountDownLatch(1);
        AtomicLong upstreamClosedAt = new AtomicLong();
        TestSupport.Handler echo = (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    + "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"));
            out.flush();
            InputStream in = s.getInputStream();
            try {
                for (int b; (b = in.read()) >= 0; ) {
                    out.write(b);
                    out.flush();
                }
            } catch (IOException reset) {
                // the proxy ended the tunnel
            } finally {
                upstreamClosedAt.set(System.nanoTime());
                upstreamClosed.countDown();
            }
            return false;
        };
        try (var backend = new TestSupport.Backend(echo);
             var proxy = TestSupport.proxy(backend.port(), "read_timeout", "1s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n");
            assertTrue(TestSupport.readHead(client.in).startsWith("HTTP/1.1 101"));
            // Traffic both ways every 250 ms, for longer than read_timeout: the tunnel lives on,
            // since the limit is on idleness, not on the tunnel's age.
            long last = 0;
            for (int i = 0; i < 7; i++) {
                if (i > 0) Thread.sleep(250); // pacing the traffic, not waiting for an event
                last = System.nanoTime();
                client.send("p");
                assertEquals('p', client.in.read(), "echo " + i + " through the tunnel");
            }
            assertEquals(1, upstreamClosed.getCount(), "the tunnel was closed while in use");
            // Now idle: both sides are closed about read_timeout after the last byte.
            try {
                assertEquals(-1, client.in.read());
            } catch (SocketException reset) {
                // closed by reset: closed all the same
            }
            long clientClosed = (System.nanoTime() - last) / MS;
            assertTrue(upstreamClosed.await(5, TimeUnit.SECONDS), "the upstream side was closed");
            long upstreamSide = (upstreamClosedAt.get() - last) / MS;
            assertTrue(clientClosed >= 900 && clientClosed < 3000, "client side closed after " + clientClosed + " ms idle");
            assertTrue(upstreamSide >= 900 && upstreamSide < 3000, "upstream side closed after " + upstreamSide + " ms idle");
        }
    }
}
