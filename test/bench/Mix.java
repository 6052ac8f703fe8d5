import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The load mix of the 128 MB run (issue 8), against one server, with nothing but java.base:
 *
 * <pre>
 *   java Mix host=H port=P www=DIR pids=PID,PID... [stalled=1500] [idle=10000]
 *            [downloads=20] [wrk_connections=1000] [wrk_seconds=5] [limit=150]
 * </pre>
 *
 * In this order, each phase holding what the earlier ones opened, so that the server
 * carries all of it at once at the end:
 * <ol>
 *   <li><b>stalled uploads</b>: {@code stalled} clients each send a {@code POST /stall} head
 *       with {@code Content-Length: 900000} and 5,000 body bytes, then pause;</li>
 *   <li>a <b>1 MiB download</b> ({@code /1m.bin}) meanwhile: whole means status 200, the
 *       file's length, and the same SHA-256 as the file in {@code www};</li>
 *   <li><b>wrk</b> with {@code wrk_connections} connections for {@code wrk_seconds} on
 *       {@code /}, and at the same time {@code downloads} parallel <b>100 MiB downloads</b>
 *       ({@code /100m.bin}), each compared byte for byte with the file;</li>
 *   <li><b>idle keep-alive connections</b>: {@code idle} clients each get {@code /} once
 *       ("Hello"), then hold the connection, idle;</li>
 *   <li>a second <b>1 MiB download</b>, with all of the above held; then everything is
 *       closed, and the server must still answer {@code /}.</li>
 * </ol>
 * Meanwhile a sampler reads VmRSS of the PIDs (summed: nginx has a master and workers)
 * every 100 ms and keeps the largest; at the end VmHWM (the kernel's own peak) is read.
 * Prints progress lines, then one line "result key=value ..." for bench.sh, then, when
 * responses were not whole, their count by path and what was wrong with the first.
 *
 * Bounded: every connect and read has a timeout, every wait a deadline, and after
 * {@code limit} seconds everything still open is closed and the result printed anyway.
 * Connections are set up at most {@link #CONNECTING} at a time, so that no listen queue
 * overflows (that would add SYN retries of a second each: the kernel, not the server).
 */
public final class Mix {
    private static final int CONNECTING = 200;
    private static final int CONNECT_TIMEOUT_MS = 10_000;
    private static final int READ_TIMEOUT_MS = 15_000;
    private static final long MiB = 1024 * 1024;

    private final InetSocketAddress target;
    private final long[] pids;
    private final long deadline;
    private final Semaphore connecting = new Semaphore(CONNECTING);
    /** Released once, at the end: every held connection (stalled, idle) closes then. */
    private final CountDownLatch release = new CountDownLatch(1);
    private final ConcurrentLinkedQueue<Socket> held = new ConcurrentLinkedQueue<>();

    private final AtomicInteger whole = new AtomicInteger();
    private final AtomicInteger notWhole = new AtomicInteger();
    private final ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
    /** Responses not whole, by path: which kind of request the server cut short. */
    private final java.util.concurrent.ConcurrentHashMap<String, AtomicInteger> failedPaths = new java.util.concurrent.ConcurrentHashMap<>();

    private Mix(InetSocketAddress target, long[] pids, long deadline) {
        this.target = target;
        this.pids = pids;
        this.deadline = deadline;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> o = new HashMap<>();
        for (String a : args) {
            int eq = a.indexOf('=');
            if (eq < 0) throw new IllegalArgumentException("not key=value: " + a);
            o.put(a.substring(0, eq), a.substring(eq + 1));
        }
        long[] pids = Arrays.stream(o.get("pids").split(",")).mapToLong(Long::parseLong).toArray();
        long limit = Long.parseLong(o.getOrDefault("limit", "150"));
        Mix mix = new Mix(new InetSocketAddress(o.get("host"), Integer.parseInt(o.get("port"))), pids,
                System.nanoTime() + TimeUnit.SECONDS.toNanos(limit));
        try {
            mix.run(o);
        } finally {
            System.out.flush();
            // Virtual threads still parked (a deadline passed) must not keep the JVM up.
            System.exit(0);
        }
    }

    private void run(Map<String, String> o) throws Exception {
        Path www = Path.of(o.get("www"));
        byte[] small = Files.readAllBytes(www.resolve("1m.bin"));
        byte[] big = Files.readAllBytes(www.resolve("100m.bin"));
        byte[] hello = "Hello".getBytes(StandardCharsets.ISO_8859_1);
        int stalled = Integer.parseInt(o.getOrDefault("stalled", "1500"));
        int idle = Integer.parseInt(o.getOrDefault("idle", "10000"));
        int downloads = Integer.parseInt(o.getOrDefault("downloads", "20"));
        int wrkConnections = Integer.parseInt(o.getOrDefault("wrk_connections", "1000"));
        int wrkSeconds = Integer.parseInt(o.getOrDefault("wrk_seconds", "5"));
        long started = System.nanoTime();

        Sampler sampler = new Sampler(pids);
        Thread samplerThread = Thread.ofPlatform().daemon().start(sampler);
        Map<String, Object> result = new java.util.LinkedHashMap<>();
        // Not closed: close() would wait for every task, and a task stuck past the deadline
        // must not hold up the result; System.exit ends them.
        ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor();
        try {
            // 1. The stalled uploads.
            CountDownLatch stallsSent = new CountDownLatch(stalled);
            AtomicInteger stallsHeld = new AtomicInteger(), stallsFailed = new AtomicInteger();
            AtomicInteger stallsAnswered = new AtomicInteger();
            for (int i = 0; i < stalled; i++) {
                threads.submit(() -> stall(stallsSent, stallsHeld, stallsFailed, stallsAnswered));
            }
            await(stallsSent);
            progress(started, stallsHeld.get() + " stalled uploads held, " + stallsFailed.get() + " failed");

            // 2. A 1 MiB download while they stall.
            int before = notWhole.get();
            fetch("/1m.bin", small, true);
            progress(started, "1 MiB download during the stalled uploads: " + (notWhole.get() == before ? "whole" : "NOT whole"));

            // 3. wrk, and the 100 MiB downloads at the same time.
            Process wrk = new ProcessBuilder("wrk", "-t2", "-c" + wrkConnections, "-d" + wrkSeconds + "s", "--latency",
                    "http://" + o.get("host") + ":" + o.get("port") + "/").redirectErrorStream(true).start();
            CountDownLatch downloaded = new CountDownLatch(downloads);
            for (int i = 0; i < downloads; i++) {
                threads.submit(() -> {
                    try {
                        fetch("/100m.bin", big, false);
                    } finally {
                        downloaded.countDown();
                    }
                });
            }
            String wrkOut = wrkOutput(wrk, wrkSeconds + 30);
            await(downloaded);
            WrkFigures w = WrkFigures.parse(wrkOut);
            progress(started, "wrk -c" + wrkConnections + " " + wrkSeconds + "s: " + w.requests + " requests, socket errors "
                    + w.socketErrors + " (of which timeouts " + w.timeouts + "), non-2xx " + w.non2xx + "; "
                    + downloads + " x 100 MiB downloads done");

            // 4. The idle keep-alive connections, each served once, then held.
            Thread.sleep(1000);
            long idleBefore = sampler.current();
            CountDownLatch served = new CountDownLatch(idle);
            AtomicInteger idleServed = new AtomicInteger();
            for (int i = 0; i < idle; i++) {
                threads.submit(() -> idleOne(hello, served, idleServed));
            }
            await(served);
            Thread.sleep(1000); // let the server settle before reading its memory
            long idleAfter = sampler.current();
            progress(started, idleServed.get() + " idle keep-alive connections served and held; RSS "
                    + idleBefore / 1024 + " -> " + idleAfter / 1024 + " MiB");

            // 5. A 1 MiB download with everything held, then close it all.
            before = notWhole.get();
            fetch("/1m.bin", small, true);
            progress(started, "1 MiB download with everything held: " + (notWhole.get() == before ? "whole" : "NOT whole"));
            release.countDown();
            for (Socket s : held) closeQuietly(s);
            Thread.sleep(1000);
            boolean alive = alive(pids[0]);
            boolean answers = alive && answers(hello);
            sampler.stop();
            samplerThread.join(1000);

            result.put("peak_hwm_kib", hwmKib(pids));
            result.put("max_rss_kib", sampler.max());
            result.put("whole", whole.get());
            result.put("not_whole", notWhole.get());
            result.put("stalls_held", stallsHeld.get());
            result.put("stalls_failed", stallsFailed.get());
            result.put("stalls_answered_early", stallsAnswered.get());
            result.put("wrk_requests", w.requests);
            result.put("wrk_socket_errors", w.socketErrors);
            result.put("wrk_timeouts", w.timeouts);
            result.put("wrk_non2xx", w.non2xx);
            result.put("idle_served", idleServed.get());
            result.put("idle_before_kib", idleBefore);
            result.put("idle_after_kib", idleAfter);
            result.put("alive", alive ? "yes" : "no");
            result.put("answers", answers ? "yes" : "no");
            result.put("seconds", (System.nanoTime() - started) / 1_000_000_000L);
        } finally {
            release.countDown();
            for (Socket s : held) closeQuietly(s);
        }
        StringBuilder line = new StringBuilder("result");
        result.forEach((k, v) -> line.append(' ').append(k).append('=').append(v));
        System.out.println(line);
        if (!failedPaths.isEmpty()) System.out.println("  not whole, by path: " + failedPaths);
        String first = failures.peek();
        if (first != null) System.out.println("  first not whole: " + first);
    }

    private void progress(long started, String what) {
        System.out.printf("  mix %4.1fs: %s%n", (System.nanoTime() - started) / 1e9, what);
    }

    /** Waits for a latch until the deadline. */
    private void await(CountDownLatch latch) throws InterruptedException {
        latch.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
    }

    private Socket connect() throws IOException, InterruptedException {
        connecting.acquire();
        Socket s = new Socket();
        try {
            held.add(s);
            s.setSoTimeout(READ_TIMEOUT_MS);
            s.connect(target, CONNECT_TIMEOUT_MS);
            return s;
        } catch (IOException e) {
            closeQuietly(s);
            throw e;
        } finally {
            connecting.release();
        }
    }

    /** One stalled upload: the head and 5,000 of the 900,000 body bytes announced, then a pause. */
    private void stall(CountDownLatch sent, AtomicInteger ok, AtomicInteger failed, AtomicInteger answered) {
        Socket s;
        try {
            s = connect();
            OutputStream out = s.getOutputStream();
            out.write(("POST /stall HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
                    + "Content-Length: 900000\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
            out.write(new byte[5000]);
            out.flush();
            ok.incrementAndGet();
        } catch (IOException | InterruptedException e) {
            failed.incrementAndGet();
            return;
        } finally {
            sent.countDown();
        }
        try {
            await(release);
            // An answer before the body was complete (503, 408, 413, ...) is not a stall held.
            if (s.getInputStream().available() > 0) answered.incrementAndGet();
        } catch (IOException | InterruptedException e) {
            // closing anyway
        } finally {
            closeQuietly(s);
        }
    }

    /** One idle keep-alive connection: served once, then held open until the release. */
    private void idleOne(byte[] hello, CountDownLatch served, AtomicInteger ok) {
        Socket s = null;
        try {
            s = connect();
            if (exchange(s, "/", hello, false)) ok.incrementAndGet();
        } catch (IOException | InterruptedException e) {
            fail("/ (idle): " + e);
        } finally {
            served.countDown();
        }
        try {
            await(release);
        } catch (InterruptedException e) {
            // closing anyway
        } finally {
            if (s != null) closeQuietly(s);
        }
    }

    /** GET PATH on a connection of its own; counts the response whole or not. */
    private void fetch(String path, byte[] expected, boolean sha256) {
        try (Socket s = connect()) {
            exchange(s, path, expected, sha256);
            held.remove(s);
        } catch (IOException | InterruptedException e) {
            fail(path + ": " + e);
        }
    }

    private boolean answers(byte[] hello) {
        int before = whole.get();
        fetch("/", hello, false);
        return whole.get() > before;
    }

    /**
     * Sends "GET PATH" and reads the response: whole when the status is 200, the
     * Content-Length is the expected length, that many body bytes arrive and they are
     * the expected bytes (and, with sha256, their SHA-256 is the expected one's).
     */
    private boolean exchange(Socket s, String path, byte[] expected, boolean sha256) throws IOException {
        s.getOutputStream().write(("GET " + path + " HTTP/1.1\r\nHost: bench\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
        InputStream in = s.getInputStream();
        byte[] buf = new byte[64 * 1024];
        int n = 0, headEnd = -1;
        while (headEnd < 0) {
            int r = in.read(buf, n, buf.length - n);
            if (r < 0) return fail(path + ": closed after " + n + " bytes of the head");
            n += r;
            headEnd = indexOf(buf, n, "\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
            if (headEnd < 0 && n == buf.length) return fail(path + ": head larger than 64 KiB");
        }
        String head = new String(buf, 0, headEnd, StandardCharsets.ISO_8859_1);
        long length = -1;
        for (String line : head.split("\r\n")) {
            if (line.regionMatches(true, 0, "Content-Length:", 0, 15)) length = Long.parseLong(line.substring(15).trim());
        }
        String status = head.substring(0, Math.min(head.length(), head.indexOf("\r\n") < 0 ? head.length() : head.indexOf("\r\n")));
        MessageDigest digest = sha256 ? sha256() : null;
        long got = 0;
        boolean same = true;
        int start = headEnd + 4;
        while (true) {
            int len = n - start;
            if (len > 0) {
                same &= got + len <= expected.length && Arrays.equals(buf, start, n, expected, (int) got, (int) (got + len));
                if (digest != null) digest.update(buf, start, len);
                got += len;
            }
            if (length >= 0 && got >= length) break;
            try {
                n = in.read(buf, 0, (int) Math.min(buf.length, length < 0 ? buf.length : length - got));
            } catch (java.net.SocketTimeoutException e) {
                return fail(path + ": \"" + status + "\", Content-Length " + length + ", no byte for "
                        + READ_TIMEOUT_MS / 1000 + " s after " + got + " body bytes");
            }
            start = 0;
            if (n < 0) break;
        }
        boolean sha = digest == null || Arrays.equals(digest.digest(), sha256().digest(expected));
        if (status.startsWith("HTTP/1.1 200 ") && length == expected.length && got == length && same && sha) {
            whole.incrementAndGet();
            return true;
        }
        return fail(path + ": \"" + status + "\", Content-Length " + length + ", " + got + " body bytes of " + expected.length
                + (same ? "" : ", different bytes") + (sha ? "" : ", different SHA-256"));
    }

    private boolean fail(String what) {
        notWhole.incrementAndGet();
        failedPaths.computeIfAbsent(what.substring(0, what.indexOf(':')), k -> new AtomicInteger()).incrementAndGet();
        if (failures.size() < 10) failures.add(what);
        return false;
    }

    private static int indexOf(byte[] buf, int n, byte[] what) {
        outer:
        for (int i = 0; i + what.length <= n; i++) {
            for (int j = 0; j < what.length; j++) if (buf[i + j] != what[j]) continue outer;
            return i;
        }
        return -1;
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }

    /** wrk's output, read to its end; wrk is killed if it runs past its time. */
    private static String wrkOutput(Process wrk, int seconds) throws InterruptedException, IOException {
        byte[][] out = new byte[1][];
        Thread reader = Thread.ofVirtual().start(() -> {
            try {
                out[0] = wrk.getInputStream().readAllBytes();
            } catch (IOException e) {
                out[0] = new byte[0];
            }
        });
        if (!wrk.waitFor(seconds, TimeUnit.SECONDS)) wrk.destroyForcibly();
        reader.join(5000);
        return out[0] == null ? "" : new String(out[0], StandardCharsets.UTF_8);
    }

    /** What wrk reports: requests done, socket errors (connect, read, write, timeout), non-2xx. */
    private record WrkFigures(long requests, long socketErrors, long timeouts, long non2xx) {
        static WrkFigures parse(String out) {
            long requests = find(out, "(\\d+) requests in"), non2xx = find(out, "Non-2xx or 3xx responses: (\\d+)");
            Matcher m = Pattern.compile("Socket errors: connect (\\d+), read (\\d+), write (\\d+), timeout (\\d+)").matcher(out);
            long errors = 0, timeouts = 0;
            if (m.find()) {
                timeouts = Long.parseLong(m.group(4));
                errors = Long.parseLong(m.group(1)) + Long.parseLong(m.group(2)) + Long.parseLong(m.group(3)) + timeouts;
            }
            return new WrkFigures(requests, errors, timeouts, non2xx);
        }

        private static long find(String out, String regex) {
            Matcher m = Pattern.compile(regex).matcher(out);
            return m.find() ? Long.parseLong(m.group(1)) : 0;
        }
    }

    /** VmRSS of the PIDs, summed, every 100 ms; the largest sum seen. */
    private static final class Sampler implements Runnable {
        private final long[] pids;
        private volatile boolean running = true;
        private volatile long max;

        Sampler(long[] pids) {
            this.pids = pids;
        }

        @Override
        public void run() {
            while (running) {
                max = Math.max(max, current());
                try {
                    Thread.sleep(100);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }

        long current() {
            long sum = 0;
            for (long pid : pids) sum += statusKib(pid, "VmRSS:");
            return sum;
        }

        long max() {
            return Math.max(max, current());
        }

        void stop() {
            running = false;
        }
    }

    /** VmHWM, the peak resident set the kernel saw, summed over the PIDs. */
    private static long hwmKib(long[] pids) {
        long sum = 0;
        for (long pid : pids) sum += statusKib(pid, "VmHWM:");
        return sum;
    }

    /** A "Name:   1234 kB" line of /proc/PID/status; 0 when the process is gone. */
    private static long statusKib(long pid, String name) {
        for (String line : status(pid)) {
            if (line.startsWith(name)) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        return 0;
    }

    /** Still running: /proc/PID exists and the process is not a zombie (dead, not yet reaped). */
    private static boolean alive(long pid) {
        for (String line : status(pid)) {
            if (line.startsWith("State:")) return !line.substring(6).trim().startsWith("Z");
        }
        return false;
    }

    private static List<String> status(long pid) {
        try {
            return Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"));
        } catch (IOException e) {
            return new ArrayList<>();
        }
    }
}
