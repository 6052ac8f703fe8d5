import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Every timeout fires. A blocking SocketChannel read or write ignores SO_TIMEOUT, so each of
 * these is enforced by the {@link Watchdog}; each test sets a short timeout in its own
 * configuration and checks that it fires about then, not much later.
 */
@Timeout(30)
class TimeoutTest {
    private static final long SECOND = 1_000_000_000L;

    private static long elapsedSince(long start) {
        return System.nanoTime() - start;
    }

    @Test
    void slowlorisIsClosedWhenTheHeaderTimeoutRunsOut() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "client_header_timeout", "1s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            long start = System.nanoTime();
            client.send("GET / HTTP/1.1\r\n");
            // Trickle a header line every 200 ms: each read is quick, but the head never ends.
            try {
                for (int i = 0; i < 40; i++) {
                    Thread.sleep(200);
                    client.send("X-" + i + ": y\r\n");
                }
            } catch (SocketException closed) {
                // expected: the proxy closed the connection
            }
            assertTrue(client.closedByPeerOrReset(), "the connection is closed");
            long took = elapsedSince(start);
            assertTrue(took >= SECOND && took < 3 * SECOND, "closed after " + took / 1_000_000 + " ms");
            assertNull(backend.received.poll(100, TimeUnit.MILLISECONDS), "nothing was forwarded");
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
            long took = elapsedSince(start);
            assertTrue(took >= SECOND * 9 / 10 && took < 3 * SECOND, "closed after " + took / 1_000_000 + " ms");
        }
    }

    @Test
    void stalledRequestBodyIsDroppedAndTheUpstreamExchangeAborted() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "client_body_timeout", "1s");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            long start = System.nanoTime();
            client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
            assertTrue(client.closedByPeerOrReset());
            long took = elapsedSince(start);
            assertTrue(took >= SECOND * 9 / 10 && took < 3 * SECOND, "closed after " + took / 1_000_000 + " ms");
            assertNull(backend.received.poll(500, TimeUnit.MILLISECONDS),
                    "the upstream never got a complete request: its connection was closed mid-body");
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
            long took = elapsedSince(start);
            assertEquals(504, resp.status());
            assertTrue(took >= SECOND * 9 / 10 && took < 2500_000_000L, "504 after " + took / 1_000_000 + " ms");
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
            String rest = TestSupport.text(client.in.readAllBytes());
            assertEquals("5\r\nhello\r\n", rest, "the body stops where the upstream stalled, with no last chunk");
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
            client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
            assertTrue(upstreamCut.await(10, TimeUnit.SECONDS), "the upstream exchange was aborted");
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
            List<Socket> fillers = new ArrayList<>();
            try {
                for (int i = 0; i < 8; i++) {
                    Socket s = new Socket();
                    try {
                        s.connect(full.getLocalSocketAddress(), 200);
                        fillers.add(s);
                    } catch (IOException e) {
                        s.close();
                        break; // the queue is full: connects now hang
                    }
                }
                try (var proxy = TestSupport.proxy(full.getLocalPort(), "connect_timeout", "1s")) {
                    long start = System.nanoTime();
                    var resp = TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                    long took = elapsedSince(start);
                    assertEquals(504, resp.status());
                    assertTrue(took >= SECOND * 9 / 10 && took < 3 * SECOND, "504 after " + took / 1_000_000 + " ms");
                }
            } finally {
                for (Socket s : fillers) s.close();
            }
        }
    }

    @Test
    void incompleteRequestThenEofForwardsNothing() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.1\r\nHost: a\r\n");
            client.socket.shutdownOutput();
            assertTrue(client.closedByPeerOrReset() || client.read().status() == 400);
            assertNull(backend.received.poll(300, TimeUnit.MILLISECONDS));
            assertFalse(backend.connections.get() > 0, "no upstream connection was even opened");
        }
    }
}
