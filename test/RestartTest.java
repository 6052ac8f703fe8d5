import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * The zero-downtime restart of the README (reuse_port = on; start the new process; SIGTERM
 * the old one), under a steady load: no request may fail across the switch.
 *
 * <p>Linux resets the connections still queued on a listener that closes, unless
 * net.ipv4.tcp_migrate_req = 1 hands them to another listener of the same port; the README
 * tells users to set it. So that the test changes nothing on the machine, it runs
 * {@link RestartScenario} in a network namespace of its own ({@code unshare -n}, as root),
 * with its own loopback and that setting: backend, both proxies and the clients are all
 * in there.
 */
@Timeout(120)
class RestartTest {
    private static final List<String> NAMESPACE = List.of("unshare", "--net", "sh", "-c",
            "ip link set lo up && echo 1 > /proc/sys/net/ipv4/tcp_migrate_req && exec \"$0\" -cp out:out-test RestartScenario");

    /** Root, unshare(1) and ip(8): a namespace can be made (CI runs as root). */
    static boolean namespaces() {
        try {
            Process p = new ProcessBuilder("unshare", "--net", "ip", "link", "set", "lo", "up").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (Exception e) {
            return false;
        }
    }

    @Test
    @EnabledIf("namespaces")
    void noRequestFailsAcrossARestartWithReusePort() throws Exception {
        List<String> command = new java.util.ArrayList<>(NAMESPACE);
        command.add(Child.java()); // $0 of the shell: the JDK the tests run on
        try (Child scenario = Child.start(command)) {
            Matcher m = scenario.awaitStdout(Pattern.compile("^result (.*)$"), Duration.ofSeconds(90));
            Map<String, Integer> r = new HashMap<>();
            for (String kv : m.group(1).split(" ")) r.put(kv.split("=")[0], Integer.parseInt(kv.split("=")[1]));
            assertEquals(0, scenario.waitFor(Duration.ofSeconds(30)));
            String all = "\n" + scenario.stdoutText();
            assertEquals(0, r.get("failed"), "requests that failed across the switch:" + all);
            assertEquals(0, r.get("old_exit"), "the old proxy stopped cleanly");
            assertEquals(0, r.get("new_exit"), "the new proxy stopped cleanly");
            assertTrue(r.get("ok") > 200, "a steady load: " + r);
            assertTrue(r.get("old_served") > 0 && r.get("new_served") > 0, "both served a share: " + r);
            assertEquals(r.get("ok"), r.get("old_served") + r.get("new_served"), "each answer is in one of the logs: " + r);
        }
    }
}
