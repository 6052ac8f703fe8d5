import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The proxy in a 128 MB container (issue 8, item 2), scaled down to run in seconds: the
 * proxy as its own process, with the image's JVM options and {@code -XX:MaxRAM=128m} (what
 * the JVM sees in such a container), under a flood: stalled uploads, idle keep-alive
 * connections, parallel downloads and a burst of small requests, all at once. Every
 * response must be whole, the process alive, its logs free of anything but log lines, and
 * its peak RSS bounded. (`make bench` runs the full-size mix.)
 */
@Timeout(120)
class ContainerTest {
    /**
     * The options a small container runs with: the Makefile's SMALL_JVM_OPTS, written into
     * the image as small.options (the JDK 25 ones only on JDK 25 and newer). A real 128 MB
     * container also gets Serial from the JVM itself; -XX:MaxRAM alone leaves G1 on here.
     */
    static final List<String> SMALL_OPTIONS = small();

    private static List<String> small() {
        List<String> o = new ArrayList<>(List.of("-XX:+UseSerialGC", "-Xmn8m", "-XX:SurvivorRatio=4", "-XX:MaxRAMPercentage=2"));
        if (Runtime.version().feature() >= 25) o.addAll(List.of("-XX:+UseCompactObjectHeaders", "-XX:TrimNativeHeapInterval=1000"));
        o.add("-XX:TieredStopAtLevel=1");
        return List.copyOf(o);
    }

    private static final Pattern LOG_LINE = Pattern.compile("^\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d \\[[a-z]+] .*");

    @Test
    void aFloodUnder128MegabytesLeavesEveryResponseWholeAndTheRssWithinBudget() throws Exception {
        byte[] big = new byte[8 << 20];
        new Random(128).nextBytes(big);
        TestSupport.Handler app = (r, out, s) -> {
            if (r.requestLine().startsWith("GET /big ")) {
                out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + big.length + "\r\n\r\n"));
                out.write(big);
            } else {
                out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello"));
            }
            return true;
        };
        List<Socket> held = new ArrayList<>();
        try (var backend = new TestSupport.Backend(app);
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor();
             // 2,356 connections at once: more than max_connections = auto gives a 64 MiB heap
             // (about 2,000 at the largest a connection can be), enough for these (2,000 idle).
             var proxy = Small.start(backend.port(), "max_connections = 3000")) {
            int port = proxy.port;

            // 300 uploads that stall after 5,000 of their 900,000 bytes, and stay.
            for (int i = 0; i < 300; i++) {
                Socket s = new Socket("127.0.0.1", port);
                s.getOutputStream().write(TestSupport.bytes("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 900000\r\n\r\n"
                        + "x".repeat(5000)));
                held.add(s);
            }
            // 2,000 keep-alive connections, each served once, then idle.
            for (int i = 0; i < 2000; i++) {
                Socket s = new Socket("127.0.0.1", port);
                s.setSoTimeout(10_000);
                s.getOutputStream().write(TestSupport.bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
                held.add(s);
                if (i % 100 == 99) {
                    for (Socket t : held.subList(held.size() - 100, held.size())) assertEquals(200, readHello(t));
                }
            }
            // Meanwhile: 6 parallel 8 MiB downloads and 20,000 small requests on 50 connections.
            List<Future<byte[]>> downloads = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                downloads.add(pool.submit(() -> TestSupport.exchange(port, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n").body()));
            }
            List<Future<Integer>> bursts = new ArrayList<>();
            for (int i = 0; i < 50; i++) bursts.add(pool.submit(burst(port, 400)));
            for (Future<byte[]> d : downloads) assertArrayEquals(big, d.get(60, TimeUnit.SECONDS), "a download is whole");
            for (Future<Integer> b : bursts) assertEquals(400, b.get(60, TimeUnit.SECONDS), "every small request got its 200");

            assertTrue(proxy.process.isAlive(), "the proxy is still running");
            long peakKib = vmHwmKib(proxy.process.pid());
            for (Socket s : held) s.close();
            held.clear();
            assertEquals("Hello", TestSupport.exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").bodyText(), "and still serves");

            proxy.assertOnlyLogLines();
            // The bound: with the image's options this scaled-down flood peaks at 70-71 MiB here
            // (three runs). The plain java under -XX:MaxRAM=128m (G1 and C2) peaked at 94-128
            // MiB, depending on the machine's load: too loose a bound to hold. `make bench`
            // measures the full mix, for the plain java and make run's options too.
            assertTrue(peakKib <= 90 * 1024, "peak RSS " + peakKib / 1024 + " MiB, over 90 MiB");
        } finally {
            for (Socket s : held) s.close();
        }
    }

    /**
     * More uploads stalled after their head than a 64 MiB heap holds (4,000: before
     * max_connections followed the heap, 4,000 of them stalled the proxy altogether, its
     * collector running without end): the heap's share is held, the rest and every other
     * client get a quick 503 while they stay, and when they go the proxy serves again, with
     * nothing in its output (no OutOfMemoryError).
     */
    @Test
    void moreStalledUploadsThanTheHeapHoldsAreRefusedNotTheProxysEnd() throws Exception {
        List<Socket> stalled = new ArrayList<>();
        try (var backend = new TestSupport.Backend(); // reads a body whole before it answers: the uploads stay
             var proxy = Small.start(backend.port(), "")) { // max_connections: auto
            int port = proxy.port;

            byte[] upload = TestSupport.bytes("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 900000\r\n\r\n"
                    + "x".repeat(5000));
            for (int i = 0; i < 4000; i++) {
                Socket s = new Socket("127.0.0.1", port);
                stalled.add(s);
                try {
                    s.getOutputStream().write(upload);
                } catch (IOException e) {
                    // refused and closed before the write: counted below
                }
            }
            // Accepted in order: when this client has its answer, so has every upload before it.
            assertEquals(503, TestSupport.exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status(),
                    "a client meanwhile gets a quick 503");
            // Each one is held (no answer yet) or refused (a 503, then the close). A refusal's
            // 503 may still be on its way (up to 64 are written by threads of their own): those
            // with no answer are looked at once more, 200 ms later, before they count as held.
            List<Socket> quiet = new ArrayList<>();
            for (Socket s : stalled) if (!refused(s)) quiet.add(s);
            Thread.sleep(200);
            int held = 0;
            for (Socket s : quiet) if (!refused(s)) held++;
            int refused = stalled.size() - held;
            assertTrue(held >= 1500 && held <= 2048, "the heap's share held (about 2,000 of a 62 MiB heap): " + held);
            assertEquals(4000, held + refused, "the others refused: " + refused);
            assertTrue(proxy.process.isAlive(), "the proxy is still running");

            for (Socket s : stalled) s.close();
            stalled.clear();
            long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
            int status;
            do {
                status = TestSupport.exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status();
            } while (status != 200 && System.nanoTime() < deadline && sleep(50));
            assertEquals(200, status, "served again once the uploads have gone");

            List<String> lines = proxy.assertOnlyLogLines();
            assertTrue(lines.stream().anyMatch(l -> l.contains("[warn] max_connections (") && l.contains(") reached: ")),
                    "the refusals are logged");
        } finally {
            for (Socket s : stalled) s.close();
        }
    }

    /** Whether a 503 (or the close after it) has come on this connection; false if nothing has. */
    private static boolean refused(Socket s) throws IOException {
        s.setSoTimeout(1);
        try {
            String head = TestSupport.readHead(s.getInputStream());
            assertTrue(head == null || head.startsWith("HTTP/1.1 503 "), "a refusal or nothing: " + head);
            return true;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (IOException e) {
            return true; // a reset after the 503
        }
    }

    private static boolean sleep(long millis) throws InterruptedException {
        Thread.sleep(millis); // a retry's pause: the slots come free as the proxy sees each upload end
        return true;
    }

    /** {@code n} GETs one after another on one keep-alive connection; the number answered 200. */
    private static Callable<Integer> burst(int port, int n) {
        return () -> {
            int ok = 0;
            try (var c = new TestSupport.Client(port)) {
                for (int i = 0; i < n; i++) {
                    if (c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n").read().status() == 200) ok++;
                }
            }
            return ok;
        };
    }

    /**
     * A small container's JVM with the C2 compiler (the plain java: a 64 MiB heap under
     * 128 MB) can outgrow the container under load, and then the kernel kills it without a
     * word: the proxy says so when it starts, and --check does too. With the image's options
     * (C1 alone) it says nothing of the kind.
     */
    @Test
    void aSmallContainersJvmWithC2IsWarnedAbout() throws Exception {
        String conf = CommandLineTest.file("listen = 127.0.0.1:0\nupstream = 127.0.0.1:5000\n").toString();
        var plain = CommandLineTest.proxy(List.of("-XX:MaxRAM=128m"), "--check", conf);
        assertEquals(0, plain.exit(), "a warning does not fail the check: " + plain);
        assertTrue(plain.stderr().contains("proxy: [warn] " + conf + ": the JVM has a heap of ")
                && plain.stderr().contains("MiB and the C2 compiler: in a container of about twice that"), plain.toString());
        List<String> small = new ArrayList<>(List.of("-XX:MaxRAM=128m"));
        small.addAll(SMALL_OPTIONS);
        var image = CommandLineTest.proxy(small, "--check", conf);
        assertEquals(0, image.exit(), image.toString());
        assertTrue(image.stderr().contains("configuration file " + conf + " test is successful"), "the check ran: " + image);
        assertTrue(!image.stderr().contains("C2 compiler"), "the image's options: no such warning: " + image);
    }

    private static int readHello(Socket s) throws IOException {
        String head = TestSupport.readHead(s.getInputStream());
        TestSupport.readExactly(s.getInputStream(), 5);
        return Integer.parseInt(head.substring(9, 12));
    }

    /** The proxy as a process of its own, in a 128 MB container's JVM with the image's options. */
    private record Small(Process process, int port, Path dir, Path errorLog, Path output) implements AutoCloseable {
        /** Started in front of the backend, with these keys added (lines); access log off. */
        static Small start(int backendPort, String keys) throws Exception {
            Path dir = Files.createTempDirectory("proxy-128m");
            Path errorLog = dir.resolve("error.log"), output = dir.resolve("output.txt"), conf = dir.resolve("proxy.properties");
            Files.writeString(conf, "listen = 127.0.0.1:0\nupstream = 127.0.0.1:" + backendPort
                    + "\naccess_log = off\nerror_log = " + errorLog + "\n" + keys + "\n");
            String javaBin = ProcessHandle.current().info().command().orElseThrow();
            List<String> command = new ArrayList<>(List.of(javaBin, "-XX:MaxRAM=128m"));
            command.addAll(SMALL_OPTIONS);
            command.addAll(List.of("-cp", "out", "Proxy", conf.toString()));
            Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(output.toFile()).start();
            Small small = new Small(process, 0, dir, errorLog, output);
            try {
                return new Small(process, awaitPort(errorLog, process), dir, errorLog, output);
            } catch (Exception | AssertionError e) {
                small.close();
                throw e;
            }
        }

        /** Nothing on stdout or stderr, and nothing but log lines in the error log: returns those. */
        List<String> assertOnlyLogLines() throws IOException {
            assertEquals("", Files.readString(output, StandardCharsets.UTF_8),
                    "nothing on the proxy's stdout or stderr (no stack trace, no OutOfMemoryError)");
            List<String> lines = Files.readAllLines(errorLog, StandardCharsets.UTF_8);
            for (String line : lines) assertTrue(LOG_LINE.matcher(line).matches(), "only log lines in the error log: " + line);
            return lines;
        }

        @Override
        public void close() throws IOException {
            try {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            try (var files = Files.list(dir)) {
                for (Path p : files.toList()) Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        }
    }

    private static int awaitPort(Path errorLog, Process proxy) throws Exception {
        Pattern listening = Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)");
        long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
        while (System.nanoTime() < deadline && proxy.isAlive()) {
            if (Files.exists(errorLog)) {
                Matcher m = listening.matcher(Files.readString(errorLog));
                if (m.find()) return Integer.parseInt(m.group(1));
            }
            Thread.sleep(20);
        }
        throw new AssertionError("the proxy did not start");
    }

    private static long vmHwmKib(long pid) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
            if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        throw new AssertionError("no VmHWM for " + pid);
    }
}
