import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;

/**
 * The README's zero-downtime restart, run under a steady load: proxy A serves; proxy B is
 * started on the same address (reuse_port = on); A gets SIGTERM and drains; B goes on
 * alone. Meanwhile clients send requests without a pause, some on a new connection each,
 * some on keep-alive connections. Prints one line of counts; RestartTest runs it (in a
 * network namespace of its own, see there) and judges them.
 *
 * <p>Clients behave as HTTP clients do (RFC 9112 9.3.1): a request on a reused connection
 * that is closed before any byte of its response arrives is sent again on a new one (the
 * server may close an idle connection at any time). That is counted as "resent", and is
 * not a failure. Any other request that gets no 200 is a failure.
 */
final class RestartScenario {
    private static final Pattern LISTENING = Pattern.compile("listening on 127\\.0\\.0\\.1:\\d+");
    private static final String GET = "GET / HTTP/1.1\r\nHost: restart\r\n\r\n";

    private static final AtomicInteger ok = new AtomicInteger();
    private static final AtomicInteger failed = new AtomicInteger();
    private static final AtomicInteger resent = new AtomicInteger();
    private static final List<String> failures = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        try (var backend = new TestSupport.Backend()) {
            int port;
            try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                port = probe.getLocalPort();
            }
            Path a = config("a", port, backend.port());
            Path b = config("b", port, backend.port());
            AtomicBoolean running = new AtomicBoolean(true);
            List<Thread> clients = new ArrayList<>();
            try (Child oldProxy = start(a)) {
                for (int i = 0; i < 3; i++) clients.add(Thread.ofVirtual().start(() -> newConnections(port, running)));
                for (int i = 0; i < 3; i++) clients.add(Thread.ofVirtual().start(() -> keepAlive(port, running)));
                Thread.sleep(1000);
                try (Child newProxy = start(b)) {
                    Thread.sleep(500); // both serve
                    kill(oldProxy, "TERM");
                    int oldExit = oldProxy.waitFor(Duration.ofSeconds(20));
                    Thread.sleep(1000); // the new one alone
                    running.set(false);
                    for (Thread t : clients) t.join(Duration.ofSeconds(20));
                    kill(newProxy, "TERM");
                    int newExit = newProxy.waitFor(Duration.ofSeconds(20));
                    System.out.println("result ok=" + ok + " failed=" + failed + " resent=" + resent
                            + " old_exit=" + oldExit + " new_exit=" + newExit
                            + " old_served=" + served(a) + " new_served=" + served(b));
                    synchronized (failures) {
                        failures.stream().limit(5).forEach(f -> System.out.println("failure: " + f));
                    }
                }
            }
        }
    }

    private static Path config(String name, int port, int upstream) throws IOException {
        Path dir = Files.createTempDirectory("restart-" + name);
        Path file = dir.resolve("proxy.properties");
        Files.writeString(file, "listen = 127.0.0.1:" + port + "\nupstream = 127.0.0.1:" + upstream
                + "\nreuse_port = on\naccess_log = " + dir.resolve("access.log") + "\n");
        return file;
    }

    private static Child start(Path file) throws Exception {
        Child proxy = Child.start(List.of(Child.java(), "-cp", "out", "Proxy", file.toString()));
        proxy.awaitStderr(LISTENING, Duration.ofSeconds(20));
        return proxy;
    }

    private static void kill(Child proxy, String signal) throws Exception {
        new ProcessBuilder("kill", "-" + signal, Long.toString(proxy.process.pid())).start().waitFor();
    }

    /** Requests answered by the proxy whose config this is: the lines of its access log. */
    private static long served(Path config) throws IOException {
        try (var lines = Files.lines(config.resolveSibling("access.log"))) {
            return lines.count();
        }
    }

    private static void newConnections(int port, AtomicBoolean running) {
        while (running.get()) {
            try {
                count(TestSupport.exchange(port, GET), "new connection");
            } catch (IOException e) {
                fail("new connection: " + e);
            }
        }
    }

    private static void keepAlive(int port, AtomicBoolean running) {
        TestSupport.Client client = null;
        boolean reused = false;
        while (running.get()) {
            try {
                if (client == null) {
                    client = new TestSupport.Client(port);
                    reused = false;
                }
                var resp = client.send(GET).read();
                count(resp, "keep-alive");
                reused = true;
                if ("close".equals(resp.header("Connection"))) {
                    client.close();
                    client = null;
                }
            } catch (IOException e) {
                if (!reused) fail("keep-alive, new connection: " + e);
                else resent.incrementAndGet(); // closed while idle: the loop sends it again, on a new one
                closeQuietly(client);
                client = null;
            }
        }
        closeQuietly(client);
    }

    private static void count(TestSupport.Response resp, String how) {
        if (resp.status() == 200) ok.incrementAndGet();
        else fail(how + ": status " + resp.status());
    }

    private static void fail(String what) {
        failed.incrementAndGet();
        synchronized (failures) {
            failures.add(what);
        }
    }

    private static void closeQuietly(TestSupport.Client c) {
        try {
            if (c != null) c.close();
        } catch (IOException ignored) {
            // done with it
        }
    }
}
