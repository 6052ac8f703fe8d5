import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The sharp edges of issue 8, item 5: what must hold when something unexpected fails, when
 * the process runs out of file descriptors, and when a timeout races an operation's end.
 */
@Timeout(60)
class RobustnessTest {

    @Test
    void anErrorWhileRelayingTheResponseClosesTheUpstreamConnection() throws Exception {
        // The failure the old proxy met in production: out of direct memory in the middle of a
        // response. The upstream connection must be closed, not leaked (and kept watched).
        BufferPool failing = new BufferPool(1L << 20) {
            @Override
            ByteBuffer take(long expected) {
                throw new OutOfMemoryError("test: Cannot reserve 65536 bytes of direct buffer memory");
            }
        };
        CompletableFuture<Boolean> upstreamClosed = new CompletableFuture<>();
        try (ServerSocket backend = new ServerSocket(0, 10, java.net.InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket s = backend.accept()) {
                    InputStream in = s.getInputStream();
                    TestSupport.readHead(in);
                    // A body too large to arrive with the head: the relay needs a buffer for it.
                    s.getOutputStream().write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"));
                    s.getOutputStream().write(new byte[100000]);
                    s.setSoTimeout(10_000);
                    upstreamClosed.complete(in.read() < 0);
                } catch (IOException e) {
                    upstreamClosed.complete(e instanceof java.net.SocketException); // reset: closed too
                }
            });
            int watchedBefore = Watchdog.size();
            try (var proxy = Proxy.start(TestSupport.config(backend.getLocalPort()), failing);
                 var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                assertTrue(client.closedByPeerOrReset(), "the client connection is closed");
                assertTrue(upstreamClosed.get(10, TimeUnit.SECONDS), "the upstream connection is closed");
                assertTrue(eventually(() -> Watchdog.size() <= watchedBefore + 1),
                        "nothing of the exchange is left watched but the client socket at most: " + Watchdog.size());
            }
        }
    }

    @Test
    void anErrorInAnUploadsThreadEndsTheExchangeAtOnceAndIsReported() throws Exception {
        // Out of memory as the upload of a body that came after its head takes its first
        // buffer. The connection's thread waits for the response meanwhile, as long as the
        // body takes (Upload.WHILE_SENDING, a day): it must learn of it at once, close the
        // upstream connection, and report the Error once.
        AtomicBoolean armed = new AtomicBoolean(true);
        BufferPool failing = new BufferPool(1L << 20) {
            @Override
            ByteBuffer take(long expected) {
                if (armed.getAndSet(false)) throw new OutOfMemoryError("test: Java heap space, in an upload");
                return super.take(expected);
            }
        };
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        CountDownLatch headArrived = new CountDownLatch(1);
        CompletableFuture<Boolean> upstreamClosed = new CompletableFuture<>();
        try (ServerSocket backend = new ServerSocket(0, 10, java.net.InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (Socket s = backend.accept()) { // reads, never answers
                    TestSupport.readHead(s.getInputStream());
                    headArrived.countDown();
                    s.setSoTimeout(10_000);
                    upstreamClosed.complete(s.getInputStream().transferTo(OutputStream.nullOutputStream()) >= 0);
                } catch (IOException e) {
                    upstreamClosed.complete(e instanceof java.net.SocketException); // reset: closed too
                }
            });
            try (var proxy = Proxy.start(TestSupport.config(backend.getLocalPort(), "error_log", errors.toString()), failing);
                 var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16384\r\n\r\n");
                assertTrue(headArrived.await(10, TimeUnit.SECONDS), "the head went ahead: the body is an upload's");
                client.out.write(new byte[16384]);
                client.out.flush();
                assertTrue(client.closedByPeerOrReset(), "the client connection is closed, not left waiting");
                assertTrue(upstreamClosed.get(10, TimeUnit.SECONDS), "the upstream connection is closed");
                String log = TestSupport.awaitText(errors, "in an upload");
                assertEquals(1, log.split("test: Java heap space, in an upload", -1).length - 1, "reported once: " + log);
            }
        }
    }

    @Test
    void theWatchdogExpiresOnlyTheOperationItFoundOverdue() throws Exception {
        try (ServerSocketChannel server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
             SocketChannel far = SocketChannel.open(server.getLocalAddress())) {
            Wire wire = new Wire(server.accept(), 64, Duration.ofSeconds(30), Duration.ofSeconds(30));
            try {
                // A read, seen by the watchdog with its deadline...
                var first = CompletableFuture.supplyAsync(() -> fill(wire), Thread::startVirtualThread);
                assertTrue(eventually(() -> wire.readDeadlineNow() != 0));
                long seen = wire.readDeadlineNow();
                // ...finishes just then, and the wire goes on to its next read.
                far.write(ByteBuffer.wrap(TestSupport.bytes("a")));
                assertEquals("ok", first.get(10, TimeUnit.SECONDS));
                wire.takeBuffered(1);
                var second = CompletableFuture.supplyAsync(() -> fill(wire), Thread::startVirtualThread);
                assertTrue(eventually(() -> wire.readDeadlineNow() != 0 && wire.readDeadlineNow() != seen));

                assertFalse(wire.expireRead(seen), "the deadline it saw belongs to a read that is over");
                assertTrue(wire.channel.isOpen(), "so the wire's next read is left alone");
                far.write(ByteBuffer.wrap(TestSupport.bytes("b")));
                assertEquals("ok", second.get(10, TimeUnit.SECONDS));

                // The read in progress at the deadline is the one that ends, as a timeout.
                wire.takeBuffered(1);
                var third = CompletableFuture.supplyAsync(() -> fill(wire), Thread::startVirtualThread);
                assertTrue(eventually(() -> wire.readDeadlineNow() != 0));
                assertTrue(wire.expireRead(wire.readDeadlineNow()));
                assertEquals("Timeout", third.get(10, TimeUnit.SECONDS));
            } finally {
                wire.close();
            }
        }
    }

    @Test
    @Timeout(15)
    void theWatchdogGoesOnAfterAnUnexpectedFailure() throws Exception {
        Watchdog.Watched broken = now -> {
            throw new IllegalStateException("test: a watched thing that fails");
        };
        Config config = TestSupport.config(1); // its error log is where the watchdog says it
        try (var proxy = Proxy.start(config);
             ServerSocketChannel server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
             SocketChannel silent = SocketChannel.open(server.getLocalAddress())) {
            Watchdog.watch(broken);
            assertTrue(silent.isConnected() && TestSupport.port(proxy) > 0);
            // Several ticks go by with the failing one watched; a timeout after them still fires.
            Wire wire = new Wire(server.accept(), 64, Duration.ofMillis(300), Duration.ofSeconds(30));
            long start = System.nanoTime();
            assertThrows(Wire.Timeout.class, wire::fill);
            long ms = (System.nanoTime() - start) / 1_000_000;
            assertTrue(ms >= 250 && ms < 3000, "timed out after " + ms + " ms");
            wire.close();
            // Said once (not once a tick), in the error log's format, as a bug is: crit, with its stack.
            String failure = "[crit] unexpected java.lang.IllegalStateException: test: a watched thing that fails"
                    + " while watching deadlines (going on)";
            assertEquals(1, TestSupport.awaitCount(config, 1, failure), String.join("\n", TestSupport.errorLog(config)));
            assertEquals(1, TestSupport.count(TestSupport.errorLog(config), failure));
        } finally {
            Watchdog.forget(broken);
        }
    }

    @Test
    void acceptBacksOffWhenOutOfFileDescriptors() throws Exception {
        // A proxy allowed few file descriptors, and more clients than it can take: accept()
        // fails with "Too many open files" while the clients wait in the listen queue. It must
        // wait for descriptors to come free (5 ms, doubling to 1 s), not spin on a core writing a
        // log line each turn; and serve again once they do.
        Path dir = Files.createTempDirectory("proxy-fd");
        Path log = dir.resolve("error.log");
        Path conf = dir.resolve("proxy.properties");
        Files.writeString(conf, "listen = 127.0.0.1:0\nupstream = 127.0.0.1:" + TestSupport.closedPort()
                + "\naccess_log = off\nerror_log = " + log + "\n");
        String javaBin = ProcessHandle.current().info().command().orElseThrow();
        Process proxy = new ProcessBuilder("bash", "-c", "ulimit -n 80 && exec \"$0\" -Xshare:off -cp out Proxy \"$1\"",
                javaBin, conf.toString()).redirectErrorStream(true).redirectOutput(dir.resolve("out.txt").toFile()).start();
        List<Socket> clients = new ArrayList<>();
        try {
            assertTrue(eventually(() -> read(log).contains("listening on")), "started: " + read(dir.resolve("out.txt")));
            java.util.regex.Matcher listening = java.util.regex.Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)").matcher(read(log));
            assertTrue(listening.find());
            int port = Integer.parseInt(listening.group(1));
            // Each client sends a request and keeps its connection: the proxy answers 502 (no
            // upstream) and holds the connection open for the next request.
            for (int i = 0; i < 100; i++) {
                Socket s = new Socket("127.0.0.1", port);
                s.getOutputStream().write(TestSupport.bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
                clients.add(s);
            }
            assertTrue(eventually(() -> read(log).contains("accept: ")), "accept failed: " + read(log));
            long firstFailure = System.nanoTime();
            long cpuBefore = cpuMillis(proxy);
            Thread.sleep(2000); // the thing measured: what the proxy does while it can't accept
            long failures = read(log).lines().filter(l -> l.contains("accept: ")).count();
            long cpu = cpuMillis(proxy) - cpuBefore;
            long seconds = Math.max(1, (System.nanoTime() - firstFailure) / 1_000_000_000);
            assertTrue(failures <= 50, failures + " accept failures logged in about " + seconds + " s");
            assertTrue(cpu < 1000, "the proxy used " + cpu + " ms of CPU in 2 s while it could not accept");

            for (Socket s : clients) s.close(); // descriptors come free...
            clients.clear();
            try (var c = new TestSupport.Client(port)) { // ...and the proxy serves again
                c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                assertEquals(502, c.read().status());
            }
        } finally {
            for (Socket s : clients) s.close();
            proxy.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            try (var files = Files.list(dir)) {
                for (Path p : files.toList()) Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        }
    }

    @Test
    void idleConnectionsWaitWithoutAThreadAndCostNoCpuWhenKeepaliveTimeoutCloses() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "keepalive_timeout", "500ms")) {
            List<TestSupport.Client> clients = new ArrayList<>();
            try {
                for (int i = 0; i < 50; i++) {
                    var c = new TestSupport.Client(TestSupport.port(proxy));
                    clients.add(c);
                    assertEquals(200, c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n").read().status());
                }
                assertTrue(eventually(() -> proxy.idle().size() == 50), "all 50 wait in IdleConnections: " + proxy.idle().size());
                for (var c : clients) assertTrue(c.closedByPeer(), "closed with FIN after keepalive_timeout");
                // The clients keep their sockets open: the proxy lingers on each (Config.LINGERING_TIME),
                // reading what the client might still send. It must wait for it, not poll for it.
                var cpu = ProcessHandle.current().info().totalCpuDuration().orElseThrow();
                Thread.sleep(1000); // the thing measured: what the lingering closes cost meanwhile
                long ms = ProcessHandle.current().info().totalCpuDuration().orElseThrow().minus(cpu).toMillis();
                assertTrue(ms < 600, "the lingering closes of 50 idle connections used " + ms + " ms of CPU in 1 s");
            } finally {
                for (var c : clients) c.close();
            }
        }
    }

    private static String fill(Wire wire) {
        try {
            return wire.fill() ? "ok" : "eof";
        } catch (Wire.Timeout e) {
            return "Timeout";
        } catch (IOException e) {
            return e.toString();
        }
    }

    private static String read(Path p) {
        try {
            return Files.exists(p) ? Files.readString(p, StandardCharsets.UTF_8) : "";
        } catch (IOException e) {
            return "";
        }
    }

    /** User and system CPU time of a child process, from /proc (clock ticks of 10 ms). */
    private static long cpuMillis(Process p) throws IOException {
        String[] f = Files.readString(Path.of("/proc/" + p.pid() + "/stat")).replaceAll(".*\\) ", "").split(" ");
        return (Long.parseLong(f[11]) + Long.parseLong(f[12])) * 10;
    }

    /** Polls the condition every 10 ms for up to TestSupport.WAIT. */
    private static boolean eventually(BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) return false;
            Thread.sleep(10);
        }
        return true;
    }
}
