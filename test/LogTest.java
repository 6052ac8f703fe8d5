import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The logs: {@code access_log = -} (the shipped setting) really writes nginx's "combined"
 * lines to standard output; the error log's levels; rotation by moving a file away or by
 * truncating it; a log that can't keep up never holds up a request and never loses a line
 * without saying so; and closing a proxy closes the log files it opened.
 * ({@link AccessLogTest}: what the access log's lines say.)
 */
@Timeout(value = 30, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class LogTest {
    /** nginx's combined format, field by field: an oracle written from nginx's documentation. */
    private static final Pattern COMBINED = Pattern.compile("^(?<addr>\\S+) - - \\[(?<time>[^]]+)] "
            + "\"(?<request>[^\"]*)\" (?<status>\\d{3}) (?<bytes>\\d+) \"(?<referer>[^\"]*)\" \"(?<agent>[^\"]*)\"$");
    private static final DateTimeFormatter TIME_LOCAL = DateTimeFormatter.ofPattern("dd/MMM/yyyy:HH:mm:ss Z", Locale.US);

    @Test
    void accessLogDashWritesCombinedLinesToStandardOutput() throws Exception {
        String shipped = Files.readString(Path.of("conf/proxy.properties"));
        assertTrue(shipped.contains("\naccess_log = -\n"), "the shipped file logs to standard output");
        try (var backend = new TestSupport.Backend()) {
            String conf = shipped.replaceAll("(?m)^listen = .*$", "listen = 127.0.0.1:0")
                    .replaceAll("(?m)^upstream = .*$", "upstream = 127.0.0.1:" + backend.port());
            Path file = Files.createTempFile(TestSupport.TEMP, "access", ".properties");
            Files.writeString(file, conf);
            try (Child proxy = Child.start(List.of(Child.java(), "-cp", "out", "Proxy", file.toString()))) {
                int port = Integer.parseInt(proxy.awaitStderr(
                        Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)"), Duration.ofSeconds(20)).group(1));

                var resp = TestSupport.exchange(port, "GET /page?q=1 HTTP/1.1\r\nHost: a\r\n"
                        + "Referer: http://example.com/from\r\nUser-Agent: test/1.0 (\"quoted\")\r\n\r\n");
                assertEquals(200, resp.status());
                Matcher line = proxy.awaitStdout(COMBINED, Duration.ofSeconds(10));
                assertEquals("127.0.0.1", line.group("addr"));
                ZonedDateTime logged = ZonedDateTime.parse(line.group("time"), TIME_LOCAL);
                assertTrue(Duration.between(logged, ZonedDateTime.now()).abs().getSeconds() < 60, line.group("time"));
                assertEquals("GET /page?q=1 HTTP/1.1", line.group("request"));
                assertEquals("200", line.group("status"));
                assertEquals("5", line.group("bytes"), "$body_bytes_sent: the body, not the head");
                assertEquals("http://example.com/from", line.group("referer"));
                assertEquals("test/1.0 (\\x22quoted\\x22)", line.group("agent"), "a quote is escaped as nginx does");

                // No Referer or User-Agent: "-", as nginx prints an empty variable.
                assertEquals(200, TestSupport.exchange(port, "GET /two HTTP/1.1\r\nHost: a\r\n\r\n").status());
                Matcher second = proxy.awaitStdout(COMBINED, Duration.ofSeconds(10));
                assertEquals("GET /two HTTP/1.1", second.group("request"));
                assertEquals("-", second.group("referer"));
                assertEquals("-", second.group("agent"));
            }
        }
    }

    @Test
    @EnabledOnOs(OS.LINUX) // /proc/self/fd lists the files this JVM has open
    void closingTheProxyClosesItsLogFiles() throws Exception {
        Path access = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        try (var backend = new TestSupport.Backend()) {
            var proxy = TestSupport.proxy(backend.port(), "access_log", access.toString(), "error_log", errors.toString());
            try {
                assertEquals(200, TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status());
                assertTrue(openHere(access), "the access log is open while the proxy runs");
                assertTrue(openHere(errors), "the error log is open while the proxy runs");
            } finally {
                proxy.close();
            }
            assertFalse(openHere(access), "Proxy.close closed the access log");
            assertFalse(openHere(errors), "Proxy.close closed the error log");
            assertTrue(Files.readString(errors).contains("listening on 127.0.0.1:"), "what was logged is in the file");
        }
    }

    /**
     * Each event at its level, and error_log's level writes it and the more severe ones
     * only. Events, in order: started and listening (notice), a request rejected (info), an
     * upstream that hangs up (marked down: warn; the 502: error), back up (notice), and a
     * last 502, which says when all the lines before it are in.
     */
    @ParameterizedTest(name = "error_log = FILE {0}")
    @CsvSource(delimiter = '|', value = {
            "       | notice listening, notice started, warn marked down, error 502, notice back up",
            "debug  | notice listening, notice started, info 400, warn marked down, error 502, notice back up",
            "info   | notice listening, notice started, info 400, warn marked down, error 502, notice back up",
            "notice | notice listening, notice started, warn marked down, error 502, notice back up",
            "warn   | warn marked down, error 502",
            "error  | error 502",
    })
    void theErrorLogWritesItsLevelAndTheMoreSevere(String level, String expected) throws Exception {
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        TestSupport.Handler hangUp = (r, out, s) -> false; // reads the request, answers nothing
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "error_log", errors + (level == null ? "" : " " + level))) {
            int port = TestSupport.port(proxy);
            assertEquals(400, TestSupport.exchange(port, "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n").status());
            backend.handler = hangUp;
            assertEquals(502, TestSupport.exchange(port, "GET /hang-up HTTP/1.1\r\nHost: a\r\n\r\n").status());
            backend.handler = TestSupport.HELLO;
            assertEquals(200, TestSupport.exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status());
            backend.handler = hangUp;
            assertEquals(502, TestSupport.exchange(port, "GET /last HTTP/1.1\r\nHost: a\r\n\r\n").status());

            String text = TestSupport.awaitText(errors, "\"GET /last HTTP/1.1\"");
            List<String> lines = text.lines().toList();
            for (String line : lines) {
                assertTrue(line.matches("\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d \\[[a-z]+] .+"), "nginx's form: " + line);
            }
            List<String> seen = new java.util.ArrayList<>();
            for (String line : lines) {
                if (line.contains("/last")) continue;
                String what = line.contains("listening on 127.0.0.1:") ? "listening"
                        : line.contains("] started: pid ") ? "started"
                        : line.contains("400 Bad Request: malformed request line, client: 127.0.0.1, request: \"GET /a b HTTP/1.1\"") ? "400"
                        : line.contains("upstream 127.0.0.1:" + backend.port() + " marked down for 10s") ? "marked down"
                        : line.contains("502 Bad Gateway: upstream 127.0.0.1:" + backend.port() + " failed: ") ? "502"
                        : line.contains("upstream 127.0.0.1:" + backend.port() + " is back up") ? "back up" : line;
                seen.add(line.substring(line.indexOf('[') + 1, line.indexOf(']')) + " " + what);
            }
            // Compared as sets: the last 502 marks the server down again, a line seen already.
            assertEquals(new java.util.TreeSet<>(List.of(expected.split(", "))), new java.util.TreeSet<>(seen), text);
        }
    }

    @Test
    void logsMovedAwayAreOpenedAgainUnderTheirNames() throws Exception {
        // logrotate's default ("create"): the file is renamed, and the program is expected
        // to start a new one under the old name. Here it does within a second, by itself.
        Path dir = Files.createTempDirectory(TestSupport.TEMP, "rotate");
        Path access = dir.resolve("access.log");
        Path errors = dir.resolve("error.log");
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "access_log", access.toString(),
                     "log_format", "$request $status", "error_log", errors.toString())) {
            int port = TestSupport.port(proxy);
            assertEquals(200, TestSupport.exchange(port, "GET /before HTTP/1.1\r\nHost: a\r\n\r\n").status());
            TestSupport.awaitLines(access, 1);
            TestSupport.awaitText(errors, "listening on");

            Files.move(access, dir.resolve("access.log.1"));
            Files.move(errors, dir.resolve("error.log.1"));
            TestSupport.awaitLines(dir.resolve("access.log.1"), 1);
            awaitExists(access); // made again, empty, as soon as the writer sees the name has no file
            awaitExists(errors);

            assertEquals(200, TestSupport.exchange(port, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n").status());
            backend.handler = (r, out, s) -> false; // an error-log line: the upstream hangs up
            assertEquals(502, TestSupport.exchange(port, "GET /fails HTTP/1.1\r\nHost: a\r\n\r\n").status());

            assertEquals("GET /after HTTP/1.1 200\nGET /fails HTTP/1.1 502\n", TestSupport.awaitLines(access, 2));
            assertTrue(TestSupport.awaitText(errors, "502 Bad Gateway").contains("\"GET /fails HTTP/1.1\""));
            assertEquals("GET /before HTTP/1.1 200\n", Files.readString(dir.resolve("access.log.1")), "the old file has the old lines");
            String oldErrors = Files.readString(dir.resolve("error.log.1"));
            assertTrue(oldErrors.contains("listening on") && !oldErrors.contains("502 Bad Gateway"), oldErrors); // not "502": a port may hold it
        }
    }

    @Test
    void aLogTruncatedInPlaceGoesOnAtItsNewEnd() throws Exception {
        // logrotate's copytruncate: the file is copied, then truncated under the program that
        // still writes to it. Opened for appending, the next line goes to offset 0, not past
        // a hole of zero bytes where the old end was.
        Path access = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "access_log", access.toString(), "log_format", "$request")) {
            int port = TestSupport.port(proxy);
            assertEquals(200, TestSupport.exchange(port, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n").status());
            TestSupport.awaitLines(access, 1);
            try (FileChannel file = FileChannel.open(access, StandardOpenOption.WRITE)) {
                file.truncate(0);
            }
            assertEquals(200, TestSupport.exchange(port, "GET /second HTTP/1.1\r\nHost: a\r\n\r\n").status());
            TestSupport.awaitLines(access, 1);
            assertArrayEquals(TestSupport.bytes("GET /second HTTP/1.1\n"), Files.readAllBytes(access));
        }
    }

    @Test
    @EnabledOnOs(OS.LINUX) // mkfifo
    void aStuckAccessLogHoldsUpNoRequestAndSaysHowManyLinesItDropped() throws Exception {
        // The access log is a pipe whose reader reads nothing, as a log shipper that hangs:
        // the writer blocks once the pipe is full, then its queue fills. Requests go on at
        // full speed regardless; the lines that don't fit are dropped and counted, and the
        // count is in the error log while the pipe is still stuck. Afterwards every request
        // is accounted for: a line through the pipe, or one of the lines counted as dropped.
        Path dir = Files.createTempDirectory(TestSupport.TEMP, "fifo");
        Path fifo = dir.resolve("access.fifo");
        Path errors = dir.resolve("error.log");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).start();
        assertTrue(mkfifo.waitFor(10, TimeUnit.SECONDS) && mkfifo.exitValue() == 0, "mkfifo");
        // Opening a pipe waits for its other end: the reader opens it as the proxy starts.
        CompletableFuture<InputStream> reader = CompletableFuture.supplyAsync(() -> {
            try {
                return new FileInputStream(fifo.toFile());
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, Thread::startVirtualThread);
        int requests = 1200;
        String agent = "a".repeat(8000); // 1200 lines of 8 KB: more than the 4 MiB queue and the pipe hold
        try (var backend = new TestSupport.Backend()) {
            var proxy = TestSupport.proxy(backend.port(), "access_log", fifo.toString(), "error_log", errors.toString(),
                    "log_format", "$request_id $http_user_agent");
            try (InputStream in = reader.get(10, TimeUnit.SECONDS)) {
                long start = System.nanoTime();
                try (var client = new TestSupport.Client(TestSupport.port(proxy))) {
                    for (int i = 0; i < requests; i++) {
                        assertEquals(200, client.send("GET /" + i + " HTTP/1.1\r\nHost: a\r\nUser-Agent: " + agent + "\r\n\r\n")
                                .read().status());
                    }
                }
                long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start);
                assertTrue(seconds < 20, requests + " requests took " + seconds + " s with the access log stuck");
                TestSupport.awaitText(errors, "access log: "); // reported while still stuck

                // Now the pipe is read: what was queued comes through, and the proxy closes.
                CompletableFuture<Long> read = CompletableFuture.supplyAsync(() -> {
                    try {
                        return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).lines().count();
                    } catch (IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }, Thread::startVirtualThread);
                proxy.close(); // writes what is queued, then the last report
                long through = read.get(20, TimeUnit.SECONDS);
                long dropped = 0;
                Matcher m = Pattern.compile("\\[error] access log: (\\d+) lines? dropped: writing fell 4 MiB behind").matcher(Files.readString(errors));
                while (m.find()) dropped += Long.parseLong(m.group(1));
                assertTrue(dropped > 0 && through > 0, through + " lines through, " + dropped + " dropped");
                assertEquals(requests, through + dropped, through + " lines through, " + dropped + " reported dropped");
            } finally {
                proxy.close();
            }
        }
    }

    @Test
    void anUnexpectedErrorIsLoggedOnceWithItsStack() throws Exception {
        // Out of direct memory in the middle of a response (RobustnessTest has what the
        // connections do then): one crit entry, the stack trace under it, nothing more.
        BufferPool failing = new BufferPool(1L << 20) {
            @Override
            java.nio.ByteBuffer take(long expected) {
                throw new OutOfMemoryError("test: no direct memory");
            }
        };
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        Path access = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        TestSupport.Handler large = (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"));
            out.write(new byte[100000]); // too large to come with the head: the relay needs a buffer
            return true;
        };
        try (var backend = new TestSupport.Backend(large)) {
            var proxy = Proxy.start(TestSupport.config(backend.port(), "error_log", errors.toString(),
                    "access_log", access.toString(), "log_format", "$status \"$request\""), failing);
            try (var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                assertTrue(client.closedByPeerOrReset());
                // The head had gone out before the relay asked for a buffer: the log has its status.
                assertEquals("200 \"GET / HTTP/1.1\"\n", TestSupport.awaitLines(access, 1));
                String text = TestSupport.awaitText(errors, "[crit]");
                List<String> lines = text.lines().toList();
                int crit = lines.indexOf(lines.stream().filter(l -> l.contains("[crit]")).findFirst().orElseThrow());
                assertTrue(lines.get(crit).endsWith("[crit] unexpected java.lang.OutOfMemoryError: test: no direct memory "
                        + "while serving a request, client: 127.0.0.1, request: \"GET / HTTP/1.1\""), lines.get(crit));
                assertTrue(lines.get(crit + 1).startsWith("\tat "), "its stack trace follows: " + text);
            } finally {
                proxy.close(); // writes everything
            }
        }
        assertEquals(1, Files.readString(errors).lines().filter(l -> l.contains("OutOfMemoryError")).count(),
                "logged once: " + Files.readString(errors));
    }

    private static void awaitExists(Path file) throws InterruptedException {
        long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
        while (!Files.exists(file)) {
            assertTrue(System.nanoTime() - deadline < 0, file + " was not made again");
            Thread.sleep(10);
        }
    }

    /** Whether this JVM holds the file open. */
    private static boolean openHere(Path file) throws IOException {
        Path real = file.toRealPath();
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.anyMatch(fd -> {
                try {
                    return Files.readSymbolicLink(fd).equals(real);
                } catch (IOException gone) {
                    return false; // closed while we looked, or the directory's own descriptor
                }
            });
        }
    }
}
