import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * The proxy run for real (issue 9), from what `make image` and `make image-root` build, as
 * the README tells a user to: the jlinked runtime with the systemd unit's command line, the
 * container's root file system with its entry point, the image podman builds from it, and
 * the unit as systemd reads it.
 *
 * <p>Containers can't always run where the tests do (here, no), so the container's root is
 * run the way a container runtime would, short of the network: in namespaces of its own
 * (mount, pid), chrooted, as user 65534, with the configuration mounted over the default.
 * Tests that need a program or a privilege the machine lacks say so with a condition.
 */
@Timeout(value = 180, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class ImageTest {
    static final Path IMAGE = Path.of("out/image").toAbsolutePath();
    static final Path ROOT = Path.of("out/image-root").toAbsolutePath();
    static final Duration STARTUP = Duration.ofSeconds(30);
    static final long MB = 1_000_000; // as podman counts; du -sh counts MiB, a little more

    @BeforeAll
    static void makeImage() throws Exception {
        try (Child c = Child.start(make("image", "image-root"))) {
            assertEquals(0, c.waitFor(Duration.ofMinutes(3)), "make image image-root:\n" + c);
        }
    }

    @Test
    void theRuntimeHoldsJavaBaseAloneInAtMost45Megabytes() throws Exception {
        String modules = output(List.of(IMAGE.resolve("bin/java").toString(), "--list-modules"));
        assertTrue(modules.matches("java\\.base@[0-9.]+"), "one module, java.base: " + modules);
        assertTrue(Files.isRegularFile(IMAGE.resolve("proxy.jar")), "the proxy's classes are in the image");

        long kib = Long.parseLong(output(List.of("du", "-sk", IMAGE.toString())).split("\\s+")[0]);
        assertTrue(kib <= 45 * 1024, "du -sh out/image: " + kib / 1024 + " MiB, at most 45");
    }

    @Test
    void theImagesSmallOptionsAreTheOnesTheContainerTestMeasures() throws Exception {
        assertEquals(String.join(" ", ContainerTest.SMALL_OPTIONS), Files.readString(IMAGE.resolve("small.options")).strip());
    }

    /** make run picks the image's options with less than 512 MB, else the server's (a larger young generation, C2). */
    @Test
    void makeRunTakesTheSmallOptionsBelow512Megabytes() throws Exception {
        String small = makeRun("MEMORY_MB=128"), server = makeRun("MEMORY_MB=4096");
        assertTrue(small.contains(" " + String.join(" ", ContainerTest.SMALL_OPTIONS) + " "), small);
        assertTrue(server.contains(" -Xmn16m ") && !server.contains("TieredStopAtLevel"), server);
        assertTrue(makeRun("MEMORY_MB=511").contains("-Xmn8m") && makeRun("MEMORY_MB=512").contains("-Xmn16m"),
                "the line is at 512 MB");
    }

    /**
     * make with these arguments, not as a sub-make of the `make test` that runs us: no
     * jobserver or flags passed down, and no JVM_OPTS from the environment.
     */
    private static ProcessBuilder make(String... args) {
        List<String> command = new ArrayList<>(List.of("make", "--no-print-directory"));
        command.addAll(List.of(args));
        ProcessBuilder make = new ProcessBuilder(command);
        make.environment().keySet().removeAll(Set.of("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "JVM_OPTS"));
        return make;
    }

    /** The command `make run` would run, with a variable set (make -n: nothing is run). */
    private static String makeRun(String variable) throws Exception {
        try (Child c = Child.start(make("-s", "-n", "run", variable))) {
            assertEquals(0, c.waitFor(Duration.ofMinutes(1)), "make -n run " + variable + ":\n" + c);
            String[] lines = c.stdoutText().strip().split("\n");
            return lines[lines.length - 1];
        }
    }

    /** The unit's ExecStart, with /opt/proxy where `make image` put it: the service's own command. */
    @Test
    void theRuntimeProxiesARequestWithTheServicesCommandLine() throws Exception {
        List<String> execStart = List.of(directive(Path.of("conf/proxy.service"), "ExecStart").split(" "));
        assertEquals("/opt/proxy/bin/java", execStart.get(0));
        assertEquals("/etc/proxy/proxy.properties", execStart.get(execStart.size() - 1));

        try (var backend = new TestSupport.Backend()) {
            Path conf = configFrom(Path.of("conf/proxy.properties"), backend.port());
            List<String> command = new ArrayList<>();
            for (String word : execStart.subList(0, execStart.size() - 1)) {
                command.add(word.replace("/opt/proxy/", IMAGE + "/"));
            }
            command.add(conf.toString());
            try (Child proxy = Child.start(command)) {
                assertHelloThrough(proxy, backend);
            }
        }
    }

    static boolean canDropToTheUnitsPrivileges() throws IOException {
        return "root".equals(System.getProperty("user.name"))
                && succeeds(List.of("setpriv", "--version"))
                && Integer.parseInt(sysctl("net/ipv4/ip_unprivileged_port_start")) > 80
                && portIsFree(80);
    }

    static boolean portIsFree(int port) {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress("127.0.0.1", port)); // we are root here
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * What the unit grants, and no more, is enough for port 80: the service's command run
     * as a user that is not root (65534, as DynamicUser= makes one) with the one ambient
     * capability, no others it could gain, and no_new_privs, as setpriv(1) sets them. The
     * same command without the capability is refused the port: the grant is what counts.
     */
    @Test
    @EnabledIf("canDropToTheUnitsPrivileges")
    void theUnitsUserAndCapabilityAreEnoughForPort80() throws Exception {
        Path unit = Path.of("conf/proxy.service");
        assertEquals("yes", directive(unit, "DynamicUser"));
        assertEquals("CAP_NET_BIND_SERVICE", directive(unit, "AmbientCapabilities"));
        assertEquals("CAP_NET_BIND_SERVICE", directive(unit, "CapabilityBoundingSet"));
        assertEquals("yes", directive(unit, "NoNewPrivileges"));
        List<String> execStart = List.of(directive(unit, "ExecStart").split(" "));

        try (var backend = new TestSupport.Backend()) {
            // In a directory user 65534 can read (TestSupport.TEMP is root's alone).
            Path dir = TestSupport.tempDirectory("proxy-port80");
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
            Path conf = Files.writeString(dir.resolve("proxy.properties"), Files.readString(configFrom(
                    Path.of("conf/proxy.properties"), backend.port())).replace("listen = 127.0.0.1:0", "listen = 127.0.0.1:80"));
            Files.setPosixFilePermissions(conf, PosixFilePermissions.fromString("rw-r--r--"));
            List<String> command = new ArrayList<>();
            for (String word : execStart.subList(0, execStart.size() - 1)) command.add(word.replace("/opt/proxy/", IMAGE + "/"));
            command.add(conf.toString());
            List<String> asNobody = List.of("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs");

            List<String> granted = new ArrayList<>(asNobody);
            granted.addAll(List.of("--inh-caps=-all,+net_bind_service", "--ambient-caps=+net_bind_service",
                    "--bounding-set=-all,+net_bind_service"));
            granted.addAll(command);
            try (Child proxy = Child.start(granted)) {
                proxy.awaitStderr(Pattern.compile("listening on 127\\.0\\.0\\.1:80,"), STARTUP);
                TestSupport.Response r = TestSupport.exchange(80, "GET /image HTTP/1.1\r\nHost: example\r\n\r\n");
                assertEquals(200, r.status(), r.head());
                assertEquals("Hello", r.bodyText());
                assertEquals(65534, uid(proxy.process.pid()), "setpriv became the proxy, as user 65534");
            }

            List<String> refused = new ArrayList<>(asNobody);
            refused.addAll(List.of("--inh-caps=-all", "--bounding-set=-all"));
            refused.addAll(command);
            try (Child proxy = Child.start(refused)) {
                proxy.awaitStderr(Pattern.compile("cannot listen on 127\\.0\\.0\\.1:80: permission denied"), STARTUP);
                assertEquals(1, proxy.waitFor(STARTUP), "a proxy that can't listen stops");
            }
        }
    }

    static boolean canRunTheContainerRoot() {
        return "root".equals(System.getProperty("user.name"))
                && succeeds(List.of("unshare", "--mount", "--pid", "--fork", "--kill-child", "true"));
    }

    /**
     * The container's root, run as the Containerfile says (ENTRYPOINT and CMD), as user
     * 65534, with nothing of the host's file system: no JDK, no C library but what
     * `make image-root` copied in. The configuration is conf/container.properties with the
     * ports changed, mounted over /etc/proxy/proxy.properties as the README's -v mounts one.
     */
    @Test
    @EnabledIf("canRunTheContainerRoot")
    void theContainerRootServesAsUser65534WithTheContainerfilesCommand() throws Exception {
        Path containerfile = Path.of("conf/Containerfile");
        assertEquals("65534:65534", directive(containerfile, "USER"));
        assertEquals("8080", directive(containerfile, "EXPOSE"));
        List<String> command = new ArrayList<>(jsonArray(directive(containerfile, "ENTRYPOINT")));
        command.addAll(jsonArray(directive(containerfile, "CMD")));
        assertEquals("/etc/proxy/proxy.properties", command.get(command.size() - 1));

        try (var backend = new TestSupport.Backend()) {
            Path conf = configFrom(Path.of("conf/container.properties"), backend.port());
            Files.setPosixFilePermissions(conf, PosixFilePermissions.fromString("rw-r--r--")); // for user 65534
            String inside = "mount -t proc proc \"$1/proc\" && mount --bind -o ro \"$2\" \"$1/etc/proxy/proxy.properties\""
                    + " && shift 2 && exec chroot --userspec=65534:65534 \"$@\"";
            List<String> contained = new ArrayList<>(List.of("unshare", "--mount", "--pid", "--fork", "--kill-child",
                    "sh", "-c", inside, "sh", ROOT.toString(), conf.toString(), ROOT.toString()));
            contained.addAll(command);
            try (Child proxy = Child.start(contained)) {
                assertHelloThrough(proxy, backend);
                assertTrue(proxy.process.descendants().anyMatch(p -> uid(p.pid()) == 65534),
                        "the proxy runs as 65534; uids: " + proxy.process.descendants().map(p -> uid(p.pid())).toList());
            }
        }
    }

    static boolean podmanIsPresent() {
        return succeeds(List.of("podman", "--version"));
    }

    @Test
    @EnabledIf("podmanIsPresent")
    void podmanBuildsAnImageOfAtMost50Megabytes() throws Exception {
        String tag = "localhost/proxy-imagetest:" + ProcessHandle.current().pid();
        try {
            output(List.of("podman", "build", "-q", "-f", "conf/Containerfile", "-t", tag, ROOT.toString()));
            String[] inspected = output(List.of("podman", "image", "inspect", "--format",
                    "{{.Size}} {{.Config.User}} {{range $port, $_ := .Config.ExposedPorts}}{{$port}}{{end}}", tag)).split(" ");
            long bytes = Long.parseLong(inspected[0]);
            assertTrue(bytes <= 50 * MB, "podman images: " + bytes / MB + " MB, at most 50");
            assertEquals("65534:65534", inspected[1]);
            assertEquals("8080/tcp", inspected[2]);
        } finally {
            succeeds(List.of("podman", "rmi", "-f", tag));
        }
    }

    static boolean systemdAnalyzeIsPresent() {
        return succeeds(List.of("systemd-analyze", "--version"));
    }

    /**
     * systemd-analyze verify checks that ExecStart's program exists, and /opt/proxy is not
     * installed here: the shipped unit must draw that one complaint and no other, and a copy
     * with /opt/proxy moved to where a runtime is must draw none.
     */
    @Test
    @EnabledIf("systemdAnalyzeIsPresent")
    void systemdAcceptsTheUnit() throws Exception {
        Path unit = Path.of("conf/proxy.service");
        Verified shipped = verify(unit);
        assertEquals(List.of("proxy.service: Command /opt/proxy/bin/java is not executable: No such file or directory"),
                shipped.lines(), "only the missing /opt/proxy");

        Path dir = Files.createTempDirectory(TestSupport.TEMP, "unit");
        Path opt = dir.resolve("opt/proxy");
        Files.createDirectories(opt.resolve("bin"));
        Files.createSymbolicLink(opt.resolve("bin/java"), IMAGE.resolve("bin/java"));
        Path copy = dir.resolve("proxy.service");
        Files.writeString(copy, Files.readString(unit).replace("/opt/proxy/", opt + "/"));
        Verified moved = verify(copy);
        assertEquals(0, moved.status(), "systemd-analyze verify: " + moved.lines());
        assertEquals(List.of(), moved.lines(), "no warning at all");
    }

    record Verified(int status, List<String> lines) {}

    static Verified verify(Path unit) throws Exception {
        ProcessBuilder b = new ProcessBuilder("systemd-analyze", "verify", unit.toString()).redirectErrorStream(true);
        try (Child c = Child.start(b)) {
            int status = c.waitFor(Duration.ofSeconds(30));
            String text = c.stdoutText();
            return new Verified(status, text.isEmpty() ? List.of() : List.of(text.split("\n")));
        }
    }

    // ---- helpers ------------------------------------------------------------------------

    /** The shipped file with listen on a free loopback port and the upstream the backend. */
    static Path configFrom(Path shipped, int upstreamPort) throws IOException {
        String conf = Files.readString(shipped)
                .replaceAll("(?m)^listen = .*$", "listen = 127.0.0.1:0")
                .replaceAll("(?m)^upstream = .*$", "upstream = 127.0.0.1:" + upstreamPort);
        Path file = Files.createTempFile(TestSupport.TEMP, "image", ".properties");
        Files.writeString(file, conf);
        return file;
    }

    /** Waits for the proxy to listen, then GET / through it: 200, Hello, and the backend saw it. */
    static void assertHelloThrough(Child proxy, TestSupport.Backend backend) throws Exception {
        int port = Integer.parseInt(proxy.awaitStderr(Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)"), STARTUP).group(1));
        TestSupport.Response r = TestSupport.exchange(port, "GET /image HTTP/1.1\r\nHost: example\r\n\r\n");
        assertEquals(200, r.status(), r.head());
        assertEquals("Hello", r.bodyText());
        assertEquals("GET /image HTTP/1.1", backend.next().requestLine());
    }

    /** The value of a line "NAME=value" (a unit) or "NAME value" (a Containerfile). */
    static String directive(Path file, String name) throws IOException {
        Matcher m = Pattern.compile("(?m)^" + name + "[= ](.*)$").matcher(Files.readString(file));
        assertTrue(m.find(), file + " has " + name);
        return m.group(1).strip();
    }

    /** The strings of a JSON array of strings without escapes, as ENTRYPOINT ["a", "b"]. */
    static List<String> jsonArray(String text) {
        assertTrue(text.startsWith("[") && text.endsWith("]") && !text.contains("\\"), "a plain JSON array: " + text);
        List<String> out = new ArrayList<>();
        for (Matcher m = Pattern.compile("\"([^\"]*)\"").matcher(text); m.find(); ) out.add(m.group(1));
        return out;
    }

    /**
     * A value under /proc/sys. Not Files.readString: it reads a file of size 0 one byte
     * first, and a sysctl file ends after the first read ("1" for 1024).
     */
    static String sysctl(String name) throws IOException {
        try (var in = Files.newInputStream(Path.of("/proc/sys", name))) {
            return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.US_ASCII).strip();
        }
    }

    static int uid(long pid) {
        try {
            Matcher m = Pattern.compile("(?m)^Uid:\\s+(\\d+)").matcher(Files.readString(Path.of("/proc/" + pid + "/status")));
            return m.find() ? Integer.parseInt(m.group(1)) : -1;
        } catch (IOException e) {
            return -1; // gone
        }
    }

    /** A program's standard output, stripped; fails unless it ends with status 0 in time. */
    static String output(List<String> command) throws Exception {
        try (Child c = Child.start(command)) {
            assertEquals(0, c.waitFor(Duration.ofMinutes(2)), String.join(" ", command) + ":\n" + c);
            return c.stdoutText().strip();
        }
    }

    static boolean succeeds(List<String> command) {
        try (Child c = Child.start(new ProcessBuilder(command).redirectErrorStream(true))) {
            return c.waitFor(Duration.ofSeconds(30)) == 0;
        } catch (IOException | InterruptedException | AssertionError e) {
            return false; // not installed, or it hangs
        }
    }
}
