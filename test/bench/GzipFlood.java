import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.GZIPInputStream;

/**
 * gzip.sh's flood: N concurrent downloads of PATH with "Accept-Encoding: gzip", all
 * started together (one virtual thread each), each read whole and decompressed when it
 * came compressed; meanwhile the summed VmRSS of the PIDs is sampled every 20 ms.
 *
 * <pre>  java GzipFlood.java HOST PORT PATH N EXPECTED_BYTES PID...</pre>
 *
 * Prints "whole=W compressed=C failed=F peak_rss_kib=R": W responses of EXPECTED_BYTES
 * after decoding, C of them compressed, F failed (an error, a short or wrong body).
 */
public final class GzipFlood {
    public static void main(String[] args) throws Exception {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String path = args[2];
        int n = Integer.parseInt(args[3]);
        long expected = Long.parseLong(args[4]);
        List<Long> pids = new ArrayList<>();
        for (int i = 5; i < args.length; i++) pids.add(Long.parseLong(args[i]));
        AtomicLong peak = new AtomicLong();
        Thread sampler = Thread.ofPlatform().daemon().start(() -> {
            while (true) {
                peak.accumulateAndGet(rss(pids), Math::max);
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
        AtomicInteger whole = new AtomicInteger(), compressed = new AtomicInteger(), failed = new AtomicInteger();
        CountDownLatch start = new CountDownLatch(1);
        byte[] request = ("GET " + path + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
                .getBytes(StandardCharsets.ISO_8859_1);
        try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < n; i++) {
                pool.submit(() -> {
                    try (Socket s = new Socket(host, port)) {
                        s.setSoTimeout(60_000);
                        start.await();
                        OutputStream out = s.getOutputStream();
                        out.write(request);
                        byte[] all = s.getInputStream().readAllBytes(); // Connection: close
                        String text = new String(all, StandardCharsets.ISO_8859_1);
                        int end = text.indexOf("\r\n\r\n");
                        String head = text.substring(0, end);
                        byte[] body = java.util.Arrays.copyOfRange(all, end + 4, all.length);
                        long size;
                        if (head.contains("Content-Encoding: gzip")) {
                            compressed.incrementAndGet();
                            size = count(new GZIPInputStream(new ByteArrayInputStream(dechunk(body))));
                        } else {
                            size = head.contains("Transfer-Encoding: chunked") ? dechunk(body).length : body.length;
                        }
                        (size == expected && head.startsWith("HTTP/1.1 200") ? whole : failed).incrementAndGet();
                    } catch (Exception e) {
                        failed.incrementAndGet();
                    }
                    return null;
                });
            }
            start.countDown();
        }
        sampler.interrupt();
        peak.accumulateAndGet(rss(pids), Math::max);
        System.out.println("whole=" + whole + " compressed=" + compressed + " failed=" + failed + " peak_rss_kib=" + peak);
    }

    static long count(InputStream in) throws IOException {
        long n = 0;
        byte[] b = new byte[65536];
        for (int r; (r = in.read(b)) > 0; ) n += r;
        return n;
    }

    static byte[] dechunk(byte[] b) {
        var out = new java.io.ByteArrayOutputStream();
        int i = 0;
        while (true) {
            int eol = i;
            while (b[eol] != '\r') eol++;
            int size = Integer.parseInt(new String(b, i, eol - i, StandardCharsets.ISO_8859_1).split(";")[0].strip(), 16);
            if (size == 0) return out.toByteArray();
            out.write(b, eol + 2, size);
            i = eol + 2 + size + 2;
        }
    }

    static long rss(List<Long> pids) {
        long total = 0;
        for (long pid : pids) {
            try {
                for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                    if (line.startsWith("VmRSS:")) total += Long.parseLong(line.replaceAll("\\D", ""));
                }
            } catch (IOException | RuntimeException gone) {
                // the process ended
            }
        }
        return total;
    }
}
