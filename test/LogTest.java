import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
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

/**
 * The logs: {@code access_log = -} (the shipped setting) really writes nginx's "combined"
 * lines to standard output, and closing a proxy closes the log files it opened.
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
