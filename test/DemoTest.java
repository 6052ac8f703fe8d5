import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * {@code make demo} itself, as the README tells a user to run it: the Hello backend on
 * 127.0.0.1:5000 and the proxy with conf/proxy.properties on :8080, then curl.
 *
 * <p>The ports are fixed (they are the tutorial's), so the test is skipped when either is
 * taken on this machine. make runs in a process group of its own ({@code setsid}), and the
 * whole group is killed at the end, also when the test fails or times out.
 */
@Timeout(value = 90, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class DemoTest {
    static final Duration STARTUP = Duration.ofSeconds(60); // make may compile src/ first

    /** Whether the demo's ports are free: 127.0.0.1:5000 for Hello, [::]:8080 for the proxy. */
    static boolean demoPortsAreFree() {
        for (InetSocketAddress a : List.of(new InetSocketAddress("127.0.0.1", 5000), new InetSocketAddress("::", 8080))) {
            try (ServerSocket s = new ServerSocket()) {
                s.bind(a);
            } catch (IOException e) {
                return false;
            }
        }
        return true;
    }

    @Test
    @EnabledIf("demoPortsAreFree")
    void makeDemoServesHelloThroughTheProxyAndStopsCompletely() throws Exception {
        ProcessBuilder make = new ProcessBuilder("setsid", "make", "--no-print-directory", "demo");
        // Not a sub-make of the `make test` that runs us: no jobserver or flags passed down.
        make.environment().keySet().removeAll(Set.of("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"));
        try (Child demo = Child.start(make)) {
            // Both announce themselves on standard error, in either order.
            Pattern ready = Pattern.compile("hello backend on /127\\.0\\.0\\.1:5000|listening on \\[::]:8080");
            Set<String> seen = new HashSet<>();
            while (seen.size() < 2) seen.add(demo.awaitStderr(ready, STARTUP).group().split(" on ")[0]);

            assertEquals("Hello", TutorialTest.curl("http://127.0.0.1:8080/"));
            assertEquals("Hello", TutorialTest.curl("http://[::1]:8080/"));
        }
        // Child.close killed make's process group and waited for every process in it.
        assertTrue(demoPortsAreFree(), "both demo processes are gone: ports 5000 and 8080 are free again");
    }
}
