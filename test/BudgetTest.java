import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The memory budget (issue 8, item 1): every transfer buffer comes from one bounded pool,
 * a transfer that waits on a slow peer holds none, and when the pool is spent transfers go
 * on, slower, instead of failing.
 */
@Timeout(60)
class BudgetTest {
    private static final int SMALL = BufferPool.SMALL;
    private static final int LARGE = BufferPool.LARGE;

    @Test
    void thePoolNeverMakesMoreThanItsBudgetAndLargeBuffersTakeAtMostHalf() {
        BufferPool pool = new BufferPool(4L << 20);
        List<ByteBuffer> lent = new ArrayList<>();
        for (ByteBuffer b; (b = pool.takeLarge()) != null; ) lent.add(b);
        assertEquals(2, lent.size(), "large buffers may take half of 4 MiB");
        for (ByteBuffer b; (b = pool.take(Long.MAX_VALUE)) != null; ) lent.add(b);
        assertEquals(2 + 32, lent.size(), "the other half: 32 small buffers");
        assertEquals(4L << 20, pool.made());
        assertNull(pool.take(10 * LARGE), "spent: a known-large body gets none either");

        lent.forEach(pool::give);
        for (int i = 0; i < 34; i++) assertNotNull(i < 2 ? pool.takeLarge() : pool.take(100));
        assertEquals(4L << 20, pool.made(), "given back, the buffers are reused, none made anew");
    }

    @Test
    void anAllocationThatFailsIsNotCounted() {
        // -XX:MaxDirectMemorySize below the budget: allocateDirect throws. The pool must
        // neither pass the error on nor count the buffer it never made.
        boolean[] fail = {true};
        BufferPool pool = new BufferPool(4L << 20) {
            @Override
            ByteBuffer allocate(int size) {
                if (fail[0]) throw new OutOfMemoryError("Cannot reserve " + size + " bytes of direct buffer memory");
                return super.allocate(size);
            }
        };
        assertNull(pool.takeLarge());
        assertNull(pool.take(100));
        assertEquals(0, pool.made());
        fail[0] = false;
        assertEquals(LARGE, pool.takeLarge().capacity(), "the failed large buffer left no count behind");
        assertEquals(SMALL, pool.take(100).capacity());
        assertEquals(LARGE + SMALL, pool.made());
    }

    @Test
    void stalledUploadsHoldNoBuffersAndADownloadMeanwhileIsWhole() throws Exception {
        stalledUploads(5000); // a trickle
    }

    @Test
    void uploadsStalledAfterABurstHoldNoBuffersEither() throws Exception {
        stalledUploads(40_000); // a burst that fills more than one read, then a pause
    }

    private void stalledUploads(int burst) throws Exception {
        byte[] big = new byte[1 << 20];
        new Random(8).nextBytes(big);
        int stalled = 100;
        Semaphore bodiesSeen = new Semaphore(0);
        List<Socket> held = new CopyOnWriteArrayList<>();
        // The backend: a download on GET; for a POST, it reads the bytes that came,
        // says so, and waits with the connection open, like an app reading a slow upload.
        try (ServerSocket backend = new ServerSocket(0, 1000, java.net.InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                while (!backend.isClosed()) {
                    try {
                        Socket s = backend.accept();
                        held.add(s);
                        Thread.ofVirtual().start(() -> serveBudgetBackend(s, big, burst, bodiesSeen));
                    } catch (IOException e) {
                        return;
                    }
                }
            });
            try (var proxy = TestSupport.proxy(backend.getLocalPort(), "buffer_memory", "1m")) {
                int port = TestSupport.port(proxy);
                List<TestSupport.Client> clients = new ArrayList<>();
                try {
                    for (int i = 0; i < stalled; i++) {
                        var c = new TestSupport.Client(port);
                        clients.add(c);
                        c.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 900000\r\n\r\n" + "x".repeat(burst));
                        assertTrue(bodiesSeen.tryAcquire(10, TimeUnit.SECONDS), "upload " + i + " reached the backend");
                    }
                    // One after the other, each stalled upload gave its buffer back before
                    // waiting: one buffer was ever needed (the old proxy: one per upload,
                    // until the budget ran out).
                    assertTrue(proxy.buffers().made() <= 2L * SMALL,
                            "buffers made for " + stalled + " stalled uploads: " + proxy.buffers().made());

                    long start = System.nanoTime();
                    var resp = TestSupport.exchange(port, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
                    assertEquals(200, resp.status());
                    assertArrayEquals(big, resp.body(), "the download is whole");
                    assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(5), "and not held up by the stalled ones");
                    assertTrue(proxy.buffers().made() <= proxy.buffers().budget());
                } finally {
                    for (var c : clients) c.close();
                    for (Socket s : held) s.close();
                }
            }
        }
    }

    @Test
    void whenTheBudgetIsSpentTransfersGoOnWithTheirOwnSmallBuffer() throws Exception {
        byte[] big = new byte[3 << 20];
        new Random(9).nextBytes(big);
        TestSupport.Handler download = (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + big.length + "\r\n\r\n"));
            out.write(big);
            return true;
        };
        // A pool that has nothing to lend: every body goes through the wires' own buffers.
        BufferPool empty = new BufferPool(1L << 20) {
            @Override
            ByteBuffer allocate(int size) {
                throw new OutOfMemoryError("Cannot reserve " + size + " bytes of direct buffer memory");
            }
        };
        try (var backend = new TestSupport.Backend(download);
             var proxy = Proxy.start(TestSupport.config(backend.port()), empty);
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            String upload = "u".repeat(200_000);
            client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + upload.length() + "\r\n\r\n" + upload);
            var resp = client.read();
            assertEquals(200, resp.status());
            assertArrayEquals(big, resp.body(), "the response is whole");
            assertEquals(upload, TestSupport.text(backend.next().body()), "and so was the request body");
            assertEquals(0, empty.made());
        }
    }

    private static void serveBudgetBackend(Socket s, byte[] big, int burst, Semaphore bodiesSeen) {
        try {
            InputStream in = s.getInputStream();
            String head = TestSupport.readHead(in);
            if (head == null) return;
            if (head.startsWith("GET ")) {
                s.getOutputStream().write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + big.length + "\r\n\r\n"));
                s.getOutputStream().write(big);
                s.getOutputStream().flush();
            } else {
                TestSupport.readExactly(in, burst);
                bodiesSeen.release();
            }
            in.read(); // hold the connection until the test closes it
        } catch (IOException e) {
            // closed at the end of the test
        }
    }
}
