import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Every timeout fires. A blocking SocketChannel read or write ignores SO_TIMEOUT, so each of
 * these is enforced by the {@link Watchdog}; each test sets a short timeout in its own
 * configuration and checks that it fires about then: not before it, and not much later
 * ({@link #assertFiredAfter}).
 */
@Timeout(30)
class TimeoutTest {
    private static final Duration ONE_SECOND = Duration.ofSeconds(1);

    /**
     * How late a timeout may fire and still pass: the watchdog ticks every 50 ms, but this
     * box has two cores shared with other work, so the bound is generous. A timeout that
     * doesn't fire at all, or fires on some other clock, is still far outside it.
     */
    private static final Duration LATE = Duration.ofMillis(1500);

    private static long elapsedSince(long start) {
        return System.nanoTime() - start;
    }

    /** The event came about {@code timeout} after {@code start}: not 10 % early, not LATE late. */
    private static void assertFiredAfter(long start, Duration timeout, String what) {
        long took = elapsedSince(start);
        assertTrue(took >= timeout.toNanos() * 9 / 10 && took < timeout.plus(LATE).toNanos(),
                what + " after " + took / 1_000_000 + " ms, expected " + timeout.toMillis() + " ms");
    }

    /**
     * Sends the start of a request head, then a header line every 200 ms (each read is
     * quick, but the head never ends), until the proxy closes the connection. The lines go
     * from a thread of their own, so the close is seen the moment it comes.
     */
    private static void trickleHeadUntilClosed(TestSupport.Client client) throws Exception {
        Thread trickler = Thread.ofVirtual().start(() -> {
            try {
                client.send("GET / HTTP/1.1\r\n");
                for (int i = 0; i < 40; i++) {
                    Thread.sleep(200);
                    client.send("X-" + i + ": y\r\n");
                }
            } catch (IOException | InterruptedException closedOrDone) {
                // the proxy closed the connection, or the test has seen the close
            }
        });
        try {
            assertTrue(client.closedByPeerOrReset(), "the connection is closed");
        } finally {
            trickler.interrupt();
            trickler.join();
        }
    }

    /** Everything the client receives until the proxy closes (FIN or RST); null if it never does. */
    private static byte[] readUntilClosed(TestSupport.Client client) {
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        byte[] buffer = new byte[4096];
        try {
            for (int n; (n = client.in.read(buffer)) >= 0; ) got.write(buffer, 0, n);
        } catch (SocketTimeoutException e) {
            return null;
        } catch (IOException reset) {
            // closed by reset: what came before it is what was received
        }
        return got.toByteArray();
    }

    @Test
    void slowlorisIsClosedWhenTheHeaderTimeoutRunsOut() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "client_header_timeout", "1s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            long start = System.nanoTime();
            trickleHeadUntilClosed(client);
            assertFiredAfter(start, ONE_SECOND, "closed");
            assertNull(backend.received.poll(100, TimeUnit.MILLISECONDS), "nothing was forwarded");
        }
    }

    // client_header_timeout, like nginx's: for a connection's first request it runs from the
    // accept, so a connection that sends nothing is closed after it (silent connections can't
    // hold slots for keepalive_timeout); for each later request keepalive_timeout covers the
    // wait for its first byte, and client_header_timeout runs from that byte.

    @Test
    void aNewConnectionThatSendsNothingIsClosedAfterTheHeaderTimeout() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "client_header_timeout", "1s", "keepalive_timeout", "10s")) {
            long start = System.nanoTime();
            try (var client = new TestSupport.Client(TestSupport.port(proxy))) {
                byte[] got = readUntilClosed(client);
                assertNotNull(got, "the proxy never closed a silent connection");
                assertFiredAfter(start, ONE_SECOND, "closed");
                assertEquals("", TestSupport.text(got), "closed without a response, as nginx does");
            }
        }
    }

    @Test
    void aKeepAliveConnectionIdleLongerThanTheHeaderTimeoutIsStillServed() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "client_header_timeout", "1s", "keepalive_timeout", "5s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status());
            Thread.sleep(1600); // idle: past client_header_timeout, within keepalive_timeout
            client.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
            var second = client.read();
            assertEquals(200, second.status());
            assertEquals("Hello", second.bodyText());
            assertEquals("GET /1 HTTP/1.1", backend.next().requestLine());
            assertEquals("GET /2 HTTP/1.1", backend.next().requestLine());
        }
    }

    @Test
    void aSlowHeadAfterAnIdleWaitIsCutAtTheHeaderTimeoutFromItsFirstByte() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "client_header_timeout", "1s", "keepalive_timeout", "5s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status());
            backend.next();
            Thread.sleep(1500); // idle for longer than client_header_timeout
            long firstByte = System.nanoTime();
            trickleHeadUntilClosed(client);
            assertFiredAfter(firstByte, ONE_SECOND, "closed");
            assertNull(backend.received.poll(100, TimeUnit.MILLISECONDS), "nothing more was forwarded");
        }
    }

    @Test
    void idleKeepAliveConnectionIsClosedWithFinAfterKeepaliveTimeout() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "keepalive_timeout", "1s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status());
            long start = System.nanoTime();
            assertEquals(-1, client.in.read(), "an orderly close (FIN): read sees end of stream, not a reset");
            assertFiredAfter(start, ONE_SECOND, "closed");
        }
    }

    @Test
    void stalledRequestBodyIsDroppedAndTheUpstreamExchangeAborted() throws Exception {
        // An upstream that reads the request head, then all it gets of the body until its
        // connection ends, and reports how it ended. Nothing answers: only the proxy can end it.
        BlockingQueue<String> upstreamSaw = new LinkedBlockingQueue<>();
        try (ServerSocket upstream = new ServerSocket(0, 10, InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket s = upstream.accept()) {
                    s.setSoTimeout((int) TestSupport.WAIT.toMillis());
                    InputStream in = s.getInputStream();
                    String head = TestSupport.readHead(in);
                    ByteArrayOutputStream body = new ByteArrayOutputStream();
                    String end;
                    try {
                        for (int b; (b = in.read()) >= 0; ) body.write(b);
                        end = "closed";
                    } catch (SocketTimeoutException e) {
                        end = "still open";
                    } catch (IOException e) {
                        end = "closed"; // by reset
                    }
                    upstreamSaw.add(head.substring(0, head.indexOf("\r\n")) + ", body '" + body + "', " + end);
                } catch (IOException e) {
                    upstreamSaw.add("failed: " + e);
                }
            });
            try (var proxy = TestSupport.proxy(upstream.getLocalPort(), "client_body_timeout", "1s");
                 var client = new TestSupport.Client(TestSupport.port(proxy))) {
                long start = System.nanoTime();
                client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
                byte[] got = readUntilClosed(client);
                assertNotNull(got, "the proxy never closed the client connection");
                assertFiredAfter(start, ONE_SECOND, "client connection closed");
                assertEquals("", TestSupport.text(got), "nothing was answered: the request was abandoned");
                String saw = upstreamSaw.poll(LATE.toMillis(), TimeUnit.MILLISECONDS);
                assertEquals("POST / HTTP/1.1, body 'abc', closed", saw,
                        "the upstream got the 3 bytes that came, then its connection was closed mid-body");
            }
        }
    }

    @Test
    void noResponseHeadWithinReadTimeoutIs504() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        try (var backend = new TestSupport.Backend((r, out, s) -> {
                release.await(20, TimeUnit.SECONDS); // never answers within the test
                return false;
            });
             var proxy = TestSupport.proxy(backend.port(), "read_timeout", "1s")) {
            long start = System.nanoTime();
            var resp = TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(504, resp.status());
            assertFiredAfter(start, ONE_SECOND, "504");
        } finally {
            release.countDown();
        }
    }

    @Test
    void upstreamStallingMidBodyClosesTheClientWithoutAFinalChunk() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        try (var backend = new TestSupport.Backend((r, out, s) -> {
                out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
                out.flush();
                release.await(20, TimeUnit.SECONDS);
                return false;
            });
             var proxy = TestSupport.proxy(backend.port(), "read_timeout", "1s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assertTrue(TestSupport.readHead(client.in).startsWith("HTTP/1.1 200"));
            long stalled = System.nanoTime(); // the head goes out with the first chunk, then the stall
            byte[] rest = readUntilClosed(client);
            assertNotNull(rest, "the proxy never closed the client connection");
            assertFiredAfter(stalled, ONE_SECOND, "closed");
            assertEquals("5\r\nhello\r\n", TestSupport.text(rest), "the body stops where the upstream stalled, with no last chunk");
        } finally {
            release.countDown();
        }
    }

    @Test
    void clientThatNeverReadsIsDroppedAfterSendTimeoutWithoutBufferingTheRest() throws Exception {
        CountDownLatch upstreamCut = new CountDownLatch(1);
        long[] sent = {0};
        TestSupport.Handler endless = (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"));
            byte[] block = new byte[64 * 1024];
            try {
                while (true) {
                    out.write(block);
                    sent[0] += block.length;
                }
            } catch (IOException e) {
                upstreamCut.countDown(); // the proxy closed the upstream connection
            }
            return false;
        };
        try (var backend = new TestSupport.Backend(endless);
             var proxy = TestSupport.proxy(backend.port(), "send_timeout", "1s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.socket.setReceiveBufferSize(64 * 1024);
            long start = System.nanoTime(); // the buffers fill in milliseconds: then the write waits
            client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
            assertTrue(upstreamCut.await(10, TimeUnit.SECONDS), "the upstream exchange was aborted");
            assertFiredAfter(start, ONE_SECOND, "upstream exchange aborted");
            // What the proxy took from the upstream is bounded by socket buffers, not the body.
            assertTrue(sent[0] < 64L << 20, "the proxy read " + sent[0] + " bytes for a client that never read");
            // Reading now, the client finds what sat in socket buffers, then the end: the
            // proxy gave up on it rather than holding the rest of the gigabyte.
            long got = 0;
            boolean ended;
            try {
                for (int n; (n = client.in.read(new byte[1 << 16])) >= 0; ) got += n;
                ended = true;
            } catch (java.net.SocketTimeoutException e) {
                ended = false;
            } catch (IOException reset) {
                ended = true;
            }
            assertTrue(ended, "the client connection was closed");
            assertTrue(got < 64L << 20, "the client got " + got + " bytes before the close");
        }
    }

    @Test
    void connectTimeoutIs504() throws Exception {
        // A listener whose accept queue is full and never drained: a further SYN is dropped,
        // so connecting hangs until the proxy's connect_timeout.
        try (ServerSocket full = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            List<Socket> fillers = TestSupport.fillAcceptQueue(full);
            try {
                try (var proxy = TestSupport.proxy(full.getLocalPort(), "connect_timeout", "1s")) {
                    long start = System.nanoTime();
                    var resp = TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                    assertEquals(504, resp.status());
                    assertFiredAfter(start, ONE_SECOND, "504");
                }
            } finally {
                for (Socket s : fillers) s.close();
            }
        }
    }

    @Test
    void incompleteRequestThenEofIsA400AndForwardsNothing() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.1\r\nHost: a\r\n");
            client.socket.shutdownOutput(); // FIN inside the head: the request can never be complete
            var resp = client.read();
            assertEquals(400, resp.status());
            assertEquals("close", resp.header("Connection"));
            assertTrue(client.closedByPeer(), "then an orderly close, with nothing after the 400");
            assertNull(backend.received.poll(300, TimeUnit.MILLISECONDS));
            assertFalse(backend.connections.get() > 0, "no upstream connection was even opened");
        }
    }
}
