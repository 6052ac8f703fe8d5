import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The command line, run as the user runs it: the proxy as a child process with the test's
 * own JDK. {@code --check} (as nginx -t), {@code --version}, {@code --help}, and the exit
 * codes: 0 ok, 1 configuration invalid or cannot start, 2 usage.
 */
@Timeout(60)
class CommandLineTest {

    /** What one run printed and how it ended. */
    record Run(int exit, String stdout, String stderr) {}

    static Run proxy(String... args) throws Exception {
        return proxy(List.of(), args);
    }

    /** The same with JVM options (before -cp). */
    static Run proxy(List<String> jvmOptions, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of(Child.java()));
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", "out", "Proxy"));
        command.addAll(List.of(args));
        try (Child child = Child.start(command)) {
            int exit = child.waitFor(Duration.ofSeconds(20));
            return new Run(exit, child.stdoutText(), child.stderrText());
        }
    }

    static Path file(String text) throws Exception {
        Path f = Files.createTempFile(TestSupport.TEMP, "check", ".properties");
        Files.writeString(f, text);
        return f;
    }

    @Test
    void checkOnTheShippedFileSaysOkAndExits0() throws Exception {
        var run = proxy("--check", "conf/proxy.properties");
        assertEquals(new Run(0, "", """
                proxy: the configuration file conf/proxy.properties syntax is ok
                proxy: configuration file conf/proxy.properties test is successful"""), run);
    }

    @Test
    void checkListsEveryProblemAndExits1() throws Exception {
        Path bad = file("""
                listen = 127.0.0.1
                read_timout = 5s
                send_timeout = 1d
                """);
        var run = proxy("--check", bad.toString());
        assertEquals(1, run.exit(), run.toString());
        assertEquals(List.of(
                "proxy: " + bad + ": unknown key 'read_timout' (did you mean 'read_timeout'?)",
                "proxy: " + bad + ": key 'listen': expected host:port, with IPv6 in brackets: '127.0.0.1' (value: '127.0.0.1')",
                "proxy: " + bad + ": key 'send_timeout': expected a duration such as 500ms, 60s, 5m or 1h (value: '1d')",
                "proxy: configuration file " + bad + " test failed: 3 problems"), run.stderr().lines().toList());
        assertEquals("", run.stdout());
    }

    @Test
    void runningWithABadFilePrintsEveryProblemAndExits1() throws Exception {
        Path bad = file("listen = 127.0.0.1:0\nkeepalive_timeot = 5s\nmax_fails = some\n");
        assertEquals(new Run(1, "", "proxy: " + bad + ": unknown key 'keepalive_timeot' (did you mean 'keepalive_timeout'?)\n"
                + "proxy: " + bad + ": key 'max_fails': expected a whole number of at least 0 (value: 'some')"), proxy(bad.toString()));
    }

    @Test
    void checkDoesNotBindTheListenPorts() throws Exception {
        // As during a restart: the port is held (here by the test, there by the old proxy).
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Path conf = file("listen = 127.0.0.1:" + taken.getLocalPort() + "\n");
            var run = proxy("--check", conf.toString());
            assertEquals(0, run.exit(), run.toString());
            assertTrue(run.stderr().endsWith("test is successful"), run.stderr());
        }
    }

    @Test
    void checkFindsWhatWouldStopTheStartWithoutCreatingAnything() throws Exception {
        Path dir = Files.createTempDirectory(TestSupport.TEMP, "logs");
        Path missing = dir.resolve("no/such/dir/access.log");
        Path bad = file("listen = 127.0.0.1:0, 192.0.2.1:8080\n" // TEST-NET-1 (RFC 5737): no machine's own
                + "access_log = " + missing + "\n"
                + "error_log = " + dir + "\n");
        var run = proxy("--check", bad.toString());
        assertEquals(1, run.exit(), run.toString());
        assertEquals(List.of(
                "proxy: the configuration file " + bad + " syntax is ok",
                "proxy: " + bad + ": key 'listen': cannot listen on 192.0.2.1:8080: not an address of this machine",
                "proxy: " + bad + ": key 'access_log': cannot create " + missing + ": no directory " + missing.getParent(),
                "proxy: " + bad + ": key 'error_log': cannot open " + dir + " for append: it is a directory",
                "proxy: configuration file " + bad + " test failed: 3 problems"), run.stderr().lines().toList());

        Path log = dir.resolve("access.log"); // can be created, so all is well; but --check doesn't create it
        var good = proxy("--check", file("listen = 127.0.0.1:0\naccess_log = " + log + "\n").toString());
        assertEquals(0, good.exit(), good.toString());
        assertFalse(Files.exists(log), "--check creates no log file");
    }

    @Test
    void checkPrintsTheTlsWarningsAStartLogsAndTheyAloneDoNotFailIt() throws Exception {
        // An expired certificate (made here with openssl, as TlsTest makes its own).
        Path dir = Files.createTempDirectory(TestSupport.TEMP, "tls");
        Path key = dir.resolve("x.key"), csr = dir.resolve("x.csr"), cert = dir.resolve("x.pem");
        TlsTest.openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key.toString(), "-out", csr.toString(),
                "-subj", "/CN=x");
        TlsTest.openssl("x509", "-req", "-in", csr.toString(), "-signkey", key.toString(), "-days", "-1", "-out", cert.toString());
        String tls = "listen = 127.0.0.1:0 ssl\nssl_certificate = " + cert + "\nssl_certificate_key = " + key
                + "\nssl_protocols = TLSv1 TLSv1.1 TLSv1.2 TLSv1.3\n";
        Path good = file(tls);
        var run = proxy("--check", good.toString());
        assertEquals(0, run.exit(), run.toString());
        List<String> lines = run.stderr().lines().toList();
        assertEquals(4, lines.size(), run.stderr());
        assertEquals("proxy: the configuration file " + good + " syntax is ok", lines.get(0));
        assertTrue(lines.get(1).startsWith("proxy: [warn] " + good + ": ssl_certificate " + cert + " expired on "), lines.get(1));
        assertEquals("proxy: [warn] " + good + ": ssl_protocols: TLSv1 and TLSv1.1 stay disabled: RFC 8996 deprecates "
                + "TLS 1.0 and 1.1; serving TLSv1.2 TLSv1.3", lines.get(2));
        assertEquals("proxy: configuration file " + good + " test is successful", lines.get(3));

        // With a problem too: the warnings, then the problem; the problem fails the check.
        Path bad = file(tls + "read_timout = 5s\n");
        run = proxy("--check", bad.toString());
        assertEquals(1, run.exit(), run.toString());
        lines = run.stderr().lines().toList();
        assertEquals(4, lines.size(), run.stderr());
        assertTrue(lines.get(0).startsWith("proxy: [warn] " + bad + ": ssl_certificate " + cert + " expired"), lines.get(0));
        assertTrue(lines.get(1).startsWith("proxy: [warn] " + bad + ": ssl_protocols: TLSv1 and TLSv1.1"), lines.get(1));
        assertEquals("proxy: " + bad + ": unknown key 'read_timout' (did you mean 'read_timeout'?)", lines.get(2));
        assertEquals("proxy: configuration file " + bad + " test failed: 1 problem", lines.get(3));
    }

    @Test
    void aFileThatDoesNotExistIsExit1SayingSo() throws Exception {
        Path none = TestSupport.TEMP.resolve("none.properties");
        assertEquals(new Run(1, "", "proxy: " + none + ": cannot read: no such file"), proxy(none.toString()));
        assertEquals(new Run(1, "", "proxy: " + none + ": cannot read: no such file\n"
                + "proxy: configuration file " + none + " test failed: 1 problem"), proxy("--check", none.toString()));
    }

    @Test
    void versionPrintsTheProxysAndTheRuntimesVersion() throws Exception {
        var run = proxy("--version");
        assertEquals(new Run(0, "proxy " + Proxy.VERSION + " (Java " + Runtime.version() + ", "
                + System.getProperty("java.vendor") + ")", ""), run);
        assertTrue(Proxy.VERSION.matches("\\d+\\.\\d+\\.\\d+"), Proxy.VERSION);
    }

    @Test
    void helpPrintsTheFormsTheExitCodesAndWhereTheKeysAreToStdout() throws Exception {
        var run = proxy("--help");
        assertEquals(0, run.exit());
        assertEquals("", run.stderr());
        for (String part : List.of("Proxy FILE", "Proxy --check FILE", "Proxy --version", "Proxy --help",
                "conf/proxy.properties", "binds no port", "exit status: 0 ok; 1 the configuration is invalid",
                "2 the command line is wrong")) {
            assertTrue(run.stdout().contains(part), part + " in:\n" + run.stdout());
        }
    }

    @ParameterizedTest(name = "[{0}] -> {1}")
    @CsvSource(delimiter = '|', value = {
            "'' | no configuration file given",
            "--frobnicate | unknown option '--frobnicate'",
            "--frobnicate conf/proxy.properties | unknown option '--frobnicate'",
            "conf/proxy.properties conf/proxy.properties | too many arguments: conf/proxy.properties conf/proxy.properties",
            "--check conf/proxy.properties extra | too many arguments: --check conf/proxy.properties extra",
            "--version extra | too many arguments: --version extra",
            "--check | --check needs a FILE",
    })
    void aWrongCommandLineIsExit2WithTheUsageOnStderr(String args, String problem) throws Exception {
        var run = proxy(args.isEmpty() ? new String[0] : args.split(" "));
        assertEquals(2, run.exit(), run.toString());
        assertEquals("", run.stdout());
        List<String> lines = run.stderr().lines().toList();
        assertEquals("proxy: " + problem, lines.get(0));
        assertTrue(lines.get(1).startsWith("usage: java -cp out Proxy FILE"), run.stderr());
    }
}
