import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tutorial end to end, as a user runs it: the real Flask app, the proxy started as its
 * own process with the shipped conf/proxy.properties (only the ports changed), and curl.
 */
@Timeout(60)
class TutorialTest {
    static final String PYTHON = "/usr/bin/python3"; // Debian's, which has Flask

    @Test
    void curlThroughTheProxyPrintsHello() throws Exception {
        Process flask = new ProcessBuilder(PYTHON, "test/tutorial/app.py").redirectErrorStream(true).start();
        Process proxy = null;
        try {
            int flaskPort = readPort(flask, Pattern.compile("^port (\\d+)$"));

            String conf = Files.readString(Path.of("conf/proxy.properties"))
                    .replaceAll("(?m)^listen = .*$", "listen = 127.0.0.1:0")
                    .replaceAll("(?m)^upstream = .*$", "upstream = 127.0.0.1:" + flaskPort);
            Path file = Files.createTempFile("tutorial", ".properties");
            Files.writeString(file, conf);
            proxy = new ProcessBuilder(java(), "-cp", "out", "Proxy", file.toString()).redirectErrorStream(true).start();
            int proxyPort = readPort(proxy, Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)"));

            assertEquals("Hello", curl("http://127.0.0.1:" + proxyPort + "/"));
            String seen = curl("http://127.0.0.1:" + proxyPort + "/headers");
            assertTrue(seen.contains("Host: 127.0.0.1:" + proxyPort), seen);
            assertTrue(seen.contains("X-Real-Ip: 127.0.0.1"), seen);
            assertTrue(seen.contains("X-Forwarded-For: 127.0.0.1"), seen);
            assertTrue(seen.contains("X-Forwarded-Proto: http"), seen);
        } finally {
            flask.destroyForcibly();
            if (proxy != null) proxy.destroyForcibly();
        }
    }

    static String java() {
        return ProcessHandle.current().info().command().orElseThrow();
    }

    static String curl(String url) throws IOException, InterruptedException {
        Process curl = new ProcessBuilder("curl", "-sS", "--max-time", "10", url).redirectErrorStream(true).start();
        String out = new String(curl.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(curl.waitFor(15, TimeUnit.SECONDS));
        assertEquals(0, curl.exitValue(), out);
        return out;
    }

    /** Reads the process's output until a line matches; that line's first group is the port. */
    static int readPort(Process p, Pattern line) throws IOException {
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        StringBuilder seen = new StringBuilder();
        for (String l; (l = r.readLine()) != null; ) {
            seen.append(l).append('\n');
            Matcher m = line.matcher(l);
            if (m.find()) {
                Thread.ofVirtual().start(() -> drain(r)); // keep its pipe from filling up
                return Integer.parseInt(m.group(1));
            }
        }
        throw new AssertionError("the process ended without saying its port:\n" + seen);
    }

    private static void drain(BufferedReader r) {
        try {
            while (r.readLine() != null) {
                // discard
            }
        } catch (IOException ignored) {
            // the process ended
        }
    }
}
