import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The configuration file: defaults, units, and a bad file that never half-starts the proxy. */
@Timeout(30)
class ConfigTest {

    @Test
    void headerKeysAreCaseInsensitive() throws Exception {
        Config c = Config.from(Map.of("header.x-forwarded-for", "$remote_addr"), "test");
        assertEquals(1, c.headers().keySet().stream().filter(k -> k.equalsIgnoreCase("X-Forwarded-For")).count(),
                "replaces the default of the same name: " + c.headers());
        assertEquals("$remote_addr", c.headers().get("x-forwarded-for"));
        var e = assertThrows(Config.Invalid.class,
                () -> Config.from(Map.of("header.X-A", "1", "header.x-a", "2"), "test"));
        assertTrue(e.getMessage().contains("name the same header"), e.getMessage());
    }

    @Test
    void aKeyGivenTwiceInTheFileOrAnAddressListenedOnTwiceIsAProblemNamingIt() throws Exception {
        // java.util.Properties would keep the last value without a word (nginx: "directive is duplicate").
        Path file = Files.createTempFile(TestSupport.TEMP, "twice", ".properties");
        Files.writeString(file, "upstream = 127.0.0.1:5000\nread_timeout = 5s\nread_timeout = 1h\n");
        var e = assertThrows(Config.Invalid.class, () -> Config.load(file));
        assertEquals(List.of(file + ": key 'read_timeout' is given twice ('5s' and '1h')"), e.problems());
        // With reuse_port, the kernel would share one address's clients between its two listeners.
        e = assertThrows(Config.Invalid.class, () -> Config.from(Map.of("listen", "127.0.0.1:8080, 127.0.0.1:8080"), "test"));
        assertEquals(List.of("test: key 'listen': 127.0.0.1:8080 is listed twice"), e.problems());
        assertEquals(2, Config.from(Map.of("listen", "127.0.0.1:0, 127.0.0.1:0"), "test").listen().size(), "port 0: two ports");
    }

    @Test
    void maxConnectionsIsWhatTheHeapHoldsAtTheLargestConnectionUnlessSet() throws Exception {
        assertEquals(2048, Connections.defaultMax(64L << 20), "a 64 MiB heap, 32 KiB a connection");
        assertEquals(10_000, Connections.defaultMax(6L << 30), "at most 10,000");
        assertEquals(64, Connections.defaultMax(1L << 20), "at least 64");
        assertEquals(Connections.defaultMax(Runtime.getRuntime().maxMemory()), Config.from(Map.of(), "test").maxConnections());
        assertEquals(Config.from(Map.of(), "test").maxConnections(),
                Config.from(Map.of("max_connections", "auto"), "test").maxConnections());
        assertEquals(50, Config.from(Map.of("max_connections", "50"), "test").maxConnections());

        assertNull(Connections.overHeap(2048, 64L << 20), "as many as it holds: no warning");
        String warning = Connections.overHeap(20_000, 64L << 20);
        assertTrue(warning != null && warning.startsWith("max_connections (20000) is more than the heap holds at 32 KiB"
                + " a connection (2048 in 64 MiB)"), "one line naming the key and the problem: " + warning);
        assertTrue(Config.from(Map.of("max_connections", "50"), "test").warnings().stream()
                .noneMatch(w -> w.startsWith("max_connections")), "50 fit any heap"); // a small test JVM may add smallJvm's
    }

    @Test
    void aSmallHeapWithTheC2CompilerIsAWarning() {
        String warning = Connections.smallJvm(61L << 20, "mixed mode, sharing");
        assertTrue(warning != null && warning.startsWith("the JVM has a heap of 61 MiB and the C2 compiler: ")
                && warning.contains("-XX:TieredStopAtLevel=1"), "what it is and what to do: " + warning);
        assertNull(Connections.smallJvm(61L << 20, "mixed mode, emulated-client, sharing"), "C1 alone: the image's options");
        assertNull(Connections.smallJvm(120L << 20, "mixed mode, sharing"), "a 256 MB container's heap: room for C2");
        assertNull(Connections.smallJvm(61L << 20, "interpreted mode, sharing"), "-Xint: no compiler at all");
    }

    @Test
    void maxHeaderFieldsIsWhatFitsUnlessSet() throws Exception {
        assertEquals(4096, Config.from(Map.of(), "test").maxHeaderFields(), "16k / 4");
        assertEquals(256, Config.from(Map.of("max_header_size", "1k"), "test").maxHeaderFields());
        assertEquals(50, Config.from(Map.of("max_header_fields", "50"), "test").maxHeaderFields());
        var e = assertThrows(Config.Invalid.class, () -> Config.from(Map.of("max_header_fields", "none"), "test"));
        assertTrue(e.getMessage().contains("'max_header_fields'"), e.getMessage());
    }

    @Test
    void durationsAreBoundedToWhatTheCodeCanHold() {
        var e = assertThrows(Config.Invalid.class, () -> Config.from(Map.of("connect_timeout", "600h"), "test"));
        assertTrue(e.getMessage().contains("'connect_timeout'") && e.getMessage().contains("at most 24h"), e.getMessage());
    }

    @Test
    void shippedFileIsTheTutorialSetupAndDocumentsEveryKey() throws Exception {
        Config shipped = Config.load(Path.of("conf/proxy.properties"));
        // Literal values: the tutorial's Flask app on 127.0.0.1:5000, weight 1 (not whatever
        // the defaults say, which would follow the code under test wherever it went).
        assertEquals(List.of(new Config.Server(new InetSocketAddress("127.0.0.1", 5000), 1)), shipped.upstream());
        assertEquals(Duration.ofSeconds(90), shipped.readTimeout());
        assertEquals(Duration.ofSeconds(65), shipped.keepaliveTimeout());
        assertEquals(1 << 20, shipped.clientMaxBodySize());
        assertEquals(Map.of("Host", "$http_host", "X-Real-IP", "$remote_addr",
                "X-Forwarded-For", "$proxy_add_x_forwarded_for", "X-Forwarded-Proto", "$scheme"), shipped.headers());
        String text = Files.readString(Path.of("conf/proxy.properties"));
        for (String key : Config.DEFAULTS.keySet()) {
            if (!key.startsWith("header.")) assertTrue(text.contains("\n" + key + " ="), key + " is documented");
        }
    }

    @ParameterizedTest(name = "{0} = {1} -> {2}")
    @CsvSource(delimiter = '|', value = {
            "read_timeout | 500ms | PT0.5S",
            "read_timeout | 90 | PT1M30S",
            "read_timeout | 2m | PT2M",
            "read_timeout | 1h | PT1H",
    })
    void durationsTakeUnits(String key, String value, String expected) throws Exception {
        assertEquals(Duration.parse(expected), Config.from(Map.of(key, value), "t").readTimeout());
    }

    @ParameterizedTest(name = "client_max_body_size = {0} -> {1}")
    @CsvSource({"0, 0", "512, 512", "8k, 8192", "1m, 1048576", "2G, 2147483648"})
    void sizesTakeUnits(String value, long expected) throws Exception {
        assertEquals(expected, Config.from(Map.of("client_max_body_size", value), "t").clientMaxBodySize());
    }

    @ParameterizedTest(name = "{0} = ''{1}''")
    @CsvSource(delimiter = '|', value = {
            "read_timeout | 5 s",
            "read_timeout | -1",
            "read_timeout | 0",
            "read_timeout | 1d",
            "client_max_body_size | 1.5m",
            "client_max_body_size | 1t",
            "max_header_size | 10",
            "max_connections | 0",
            "upstream_keepalive | lots",
            "listen | 8080",
            "listen | 127.0.0.1:99999",
            "listen | ::1:80",
            "upstream | 127.0.0.1:5000 weight=0",
            "upstream | 127.0.0.1:5000 wait=2",
            "upstream | ' '",
            "header.X-A | $remote_adr",
            "header.Bad Name | x",
            "error_log | off",
            "error_log | /tmp/error.log loud",
            "log_format | $remote_addr $bogus",
            "log_format | ' '",
            "header.X-Id | $request_time",
            "upstream | no-such-host.invalid:5000",
            "resolve_interval | soon",
            "resolve_interval | 1d",
            "health_check | healthz",
            "health_check | /a b",
            "health_check | http://a/healthz",
            "health_check_interval | 0",
            "health_check_interval | 5 s",
    })
    void badValuesAreRejectedNamingTheKey(String key, String value) {
        var e = assertThrows(Config.Invalid.class, () -> Config.from(Map.of(key, value), "my.properties"));
        assertTrue(e.getMessage().startsWith("my.properties: key '" + key + "'"), e.getMessage());
        assertEquals(1, e.problems().size(), "one bad value is one problem, not a cascade: " + e.problems());
    }

    @Test
    void aServerGivenByNameIsResolvedAtStartAndKeepsItsName() throws Exception {
        Config c = Config.from(Map.of("upstream", "localhost:5000, 127.0.0.1:5001 weight=2, [::1]:5002"), "t");
        var named = c.upstream().get(0);
        assertEquals("localhost", named.name(), "looked up again as it runs (Resolver)");
        assertTrue(named.address().getAddress().isLoopbackAddress(), "resolved at start: " + named.address());
        assertEquals("localhost:5000", named.hostPort(), "the Host of a request without one");
        assertEquals(null, c.upstream().get(1).name(), "an IPv4 address is never looked up");
        assertEquals(2, c.upstream().get(1).weight());
        assertEquals(null, c.upstream().get(2).name(), "nor an IPv6 one");
    }

    @Test
    void reResolvingIsOnAndHealthChecksAreOffByDefault() throws Exception {
        Config d = Config.from(Map.of(), "t");
        assertEquals(Duration.ofSeconds(30), d.resolveInterval(), "Java's own cache keeps answers 30 s");
        assertEquals("", d.healthCheck());
        assertEquals(Duration.ofSeconds(5), d.healthCheckInterval());
        Config c = Config.from(Map.of("resolve_interval", "0", "health_check", "/healthz?full=1",
                "health_check_interval", "200ms"), "t");
        assertEquals(Duration.ZERO, c.resolveInterval(), "0: names are looked up at start only");
        assertEquals("/healthz?full=1", c.healthCheck());
        assertEquals(Duration.ofMillis(200), c.healthCheckInterval());
    }

    @Test
    void everyProblemIsListedNotJustTheFirst() {
        Map<String, String> file = new java.util.TreeMap<>(Map.of(
                "read_timout", "5s",
                "listen", "8080",
                "max_connections", "0",
                "header.X-A", "$remote_adr",
                "send_timeout", "60s")); // good keys among the bad change nothing
        var e = assertThrows(Config.Invalid.class, () -> Config.from(file, "f"));
        assertEquals(List.of(
                "f: unknown key 'read_timout' (did you mean 'read_timeout'?)",
                "f: key 'listen': expected host:port, with IPv6 in brackets: '8080' (value: '8080')",
                "f: key 'max_connections': expected a whole number of at least 1 (value: '0')",
                "f: key 'header.X-A': unknown variable $remote_adr; known: " + Config.VARIABLES + " (value: '$remote_adr')"),
                e.problems(), "unknown keys first, then the bad values in the order of the keys");
        assertEquals(String.join("\n", e.problems()), e.getMessage(), "the message is the problems, one a line");
    }

    @Test
    void errorLogTakesALevelAfterItsPathAsNginxDoes() throws Exception {
        Config c = Config.from(Map.of("error_log", "/var/log/proxy/error.log warn"), "t");
        assertEquals("/var/log/proxy/error.log", c.errorLog());
        assertEquals(Log.Level.WARN, c.errorLogLevel());
        assertEquals(Log.Level.NOTICE, Config.from(Map.of(), "t").errorLogLevel(), "notice by default");
        Config dash = Config.from(Map.of("error_log", "- debug"), "t");
        assertEquals("-", dash.errorLog());
        assertEquals(Log.Level.DEBUG, dash.errorLogLevel());
    }

    @Test
    void unknownKeySuggestsTheClosestKnownOne() {
        var e = assertThrows(Config.Invalid.class, () -> Config.from(Map.of("read_timout", "5s"), "my.properties"));
        assertEquals("my.properties: unknown key 'read_timout' (did you mean 'read_timeout'?)", e.getMessage());
        var far = assertThrows(Config.Invalid.class, () -> Config.from(Map.of("colour", "blue"), "f"));
        assertEquals("f: unknown key 'colour'", far.getMessage());
    }

    @Test
    void aBadFileStopsTheProgramAtOnceWithOneMessage() throws Exception {
        Path bad = Files.createTempFile(TestSupport.TEMP, "bad", ".properties");
        Files.writeString(bad, "listen = 127.0.0.1:0\nkeepalive_timeot = 5s\n");
        var run = run(bad);
        assertNotEquals(0, run.exit());
        assertEquals("proxy: " + bad + ": unknown key 'keepalive_timeot' (did you mean 'keepalive_timeout'?)\n", run.output());
    }

    @Test
    void aPortInUseStopsTheProgramAtOnce() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Path conf = Files.createTempFile(TestSupport.TEMP, "busy", ".properties");
            Files.writeString(conf, "listen = 127.0.0.1:" + taken.getLocalPort() + "\n");
            var run = run(conf);
            assertNotEquals(0, run.exit());
            assertTrue(run.output().startsWith("proxy: key 'listen': cannot listen on 127.0.0.1:" + taken.getLocalPort()
                    + ": address already in use"), run.output());
        }
    }

    record Run(int exit, String output) {}

    static Run run(Path conf) throws Exception {
        Process p = new ProcessBuilder(TutorialTest.java(), "-cp", "out", "Proxy", conf.toString())
                .redirectErrorStream(true).start();
        p.getOutputStream().close(); // it reads no input
        try (var out = p.getInputStream()) {
            assertTrue(p.waitFor(20, TimeUnit.SECONDS), "the program stopped by itself");
            return new Run(p.exitValue(), new String(out.readAllBytes(), StandardCharsets.UTF_8));
        } finally {
            p.destroyForcibly(); // a program that did not stop must not outlive the test
        }
    }
}
