import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tutorial end to end, as a user runs it: the real Flask app, the proxy started as its
 * own process with the shipped conf/proxy.properties (only the ports changed), and curl.
 *
 * <p>The timeout runs on a separate thread: a test stuck in a call that ignores interrupts
 * still fails on time. Every child is a {@link Child}, stopped when the test ends, also
 * when it fails or times out ({@link #stopChildren}).
 */
@Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class TutorialTest {
    static final String PYTHON = "/usr/bin/python3"; // Debian's, which has Flask
    static final Duration STARTUP = Duration.ofSeconds(20);

    /** The children started, stopped after the test even if its thread was abandoned. */
    private final List<Child> children = new CopyOnWriteArrayList<>();

    @AfterEach
    void stopChildren() {
        for (Child c : children) c.close();
    }

    private Child start(String... command) throws IOException {
        Child c = Child.start(List.of(command));
        children.add(c);
        return c;
    }

    @Test
    void curlThroughTheProxyPrintsHello() throws Exception {
        try (Child flask = start(PYTHON, "test/tutorial/app.py")) {
            int flaskPort = Integer.parseInt(flask.awaitStdout(Pattern.compile("^port (\\d+)$"), STARTUP).group(1));

            String conf = Files.readString(Path.of("conf/proxy.properties"))
                    .replaceAll("(?m)^listen = .*$", "listen = 127.0.0.1:0")
                    .replaceAll("(?m)^upstream = .*$", "upstream = 127.0.0.1:" + flaskPort);
            Path file = Files.createTempFile(TestSupport.TEMP, "tutorial", ".properties");
            Files.writeString(file, conf);
            try (Child proxy = start(java(), "-cp", "out", "Proxy", file.toString())) {
                int proxyPort = Integer.parseInt(proxy.awaitStderr(
                        Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)"), STARTUP).group(1));

                assertEquals("Hello", curl("http://127.0.0.1:" + proxyPort + "/"));
                String seen = curl("http://127.0.0.1:" + proxyPort + "/headers");
                assertTrue(seen.contains("Host: 127.0.0.1:" + proxyPort), seen);
                assertTrue(seen.contains("X-Real-Ip: 127.0.0.1"), seen);
                assertTrue(seen.contains("X-Forwarded-For: 127.0.0.1"), seen);
                assertTrue(seen.contains("X-Forwarded-Proto: http"), seen);
            }
        }
    }

    static String java() {
        return Child.java();
    }

    /** curl's standard output for the URL; fails unless curl succeeds within its time. */
    static String curl(String url) throws IOException, InterruptedException {
        try (Child curl = Child.start(List.of("curl", "-sS", "--max-time", "10", url))) {
            assertEquals(0, curl.waitFor(Duration.ofSeconds(15)), "curl " + url + ":\n" + curl);
            return curl.stdoutText();
        }
    }
}
