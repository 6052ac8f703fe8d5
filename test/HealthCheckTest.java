import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntUnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Active health checks ({@link HealthCheck}): two failed checks in a row take a server out of
 * rotation, two passes bring it back, and the error log says so. Observed from the servers'
 * side: which one got the requests, and what each check looked like. The checks come every
 * 200 ms; a test waits for the check after the one that decides, since a round of checks
 * begins only once the one before has its outcome.
 */
@Timeout(30)
class HealthCheckTest {
    private static final String GET = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

    /** One check as the server received it, and the status it answered. */
    record Check(TestSupport.Received request, int status) {}

    /**
     * An app: answers {@code GET /healthz} with the status {@code health} gives for the
     * check's number (1, 2, ...), and every other request with its name.
     */
    static final class App implements AutoCloseable {
        final BlockingQueue<Check> checks = new LinkedBlockingQueue<>();
        final BlockingQueue<TestSupport.Received> requests = new LinkedBlockingQueue<>();
        final AtomicInteger checked = new AtomicInteger();
        volatile IntUnaryOperator health = n -> 200;
        final TestSupport.Backend backend;

        App(String name) throws IOException {
            backend = new TestSupport.Backend((r, out, s) -> {
                if (!r.requestLine().startsWith("GET /healthz ")) {
                    requests.add(r);
                    out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + name.length() + "\r\n\r\n" + name));
                    return true;
                }
                int status = health.applyAsInt(checked.incrementAndGet());
                if (status == 0) { // no answer: wait until the proxy gives up and closes
                    try {
                        while (s.getInputStream().read() >= 0) {
                            // nothing more comes
                        }
                    } catch (IOException reset) {
                        // closed all the same
                    }
                    checks.add(new Check(r, 0));
                    return false;
                }
                checks.add(new Check(r, status));
                out.write(TestSupport.bytes("HTTP/1.1 " + status + " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
                return false;
            });
        }

        int port() {
            return backend.port();
        }

        /** The next check, waiting at most TestSupport.WAIT. */
        Check nextCheck() throws InterruptedException {
            Check c = checks.poll(TestSupport.WAIT.toMillis(), TimeUnit.MILLISECONDS);
            if (c == null) throw new AssertionError("no health check came");
            return c;
        }

        /** Waits until n more checks have come (then every check before the last has its outcome). */
        void checks(int n) throws InterruptedException {
            for (int i = 0; i < n; i++) nextCheck();
        }

        @Override
        public void close() throws IOException {
            backend.close();
        }
    }

    private static Config config(App... apps) throws Exception {
        return config(List.of(), apps);
    }

    private static Config config(List<String> more, App... apps) throws Exception {
        List<String> kv = new ArrayList<>(List.of("health_check", "/healthz", "health_check_interval", "200ms"));
        List<String> servers = new ArrayList<>();
        for (App a : apps) servers.add("127.0.0.1:" + a.port());
        kv.addAll(List.of("upstream", String.join(", ", servers)));
        kv.addAll(more);
        return TestSupport.config(0, kv.toArray(String[]::new));
    }

    /** Which app served each of n requests, as "a a b". */
    private static String served(Proxy proxy, int n) throws IOException {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < n; i++) names.add(TestSupport.exchange(TestSupport.port(proxy), GET).bodyText());
        return String.join(" ", names);
    }

    @Test
    void aServerFailingTwoChecksGetsNoRequestsUntilItPassesTwo() throws Exception {
        try (var good = new App("good"); var bad = new App("bad")) {
            AtomicInteger status = new AtomicInteger(503);
            bad.health = n -> status.get();
            Config config = config(good, bad);
            try (var proxy = Proxy.start(config)) {
                bad.checks(3); // two failures, and the third check: the second's outcome is in
                assertEquals("good good good good good good", served(proxy, 6));
                assertEquals(0, bad.requests.size(), "out of rotation: no request reached it");
                String out = "upstream 127.0.0.1:" + bad.port() + " failed its health check (GET /healthz: 503), out of rotation";
                assertEquals(1, TestSupport.awaitCount(config, 1, out), TestSupport.errorLog(config).toString());

                status.set(200);
                int passed = 0;
                while (passed < 2) if (bad.nextCheck().status() == 200) passed++;
                bad.checks(1); // the second pass has its outcome
                served(proxy, 4);
                assertEquals(2, bad.requests.size(), "back in rotation: every other request");
                String back = "upstream 127.0.0.1:" + bad.port() + " passed its health check twice, back in rotation";
                assertEquals(1, TestSupport.awaitCount(config, 1, back), TestSupport.errorLog(config).toString());
                assertEquals(0, TestSupport.count(TestSupport.errorLog(config), "upstream 127.0.0.1:" + good.port()), "the good one: nothing to say");
            }
        }
    }

    @Test
    void oneFailedCheckIsNotEnough() throws Exception {
        try (var good = new App("good"); var flaky = new App("flaky")) {
            flaky.health = n -> n % 2 == 1 ? 503 : 200; // fails every other check: never two in a row
            Config config = config(good, flaky);
            try (var proxy = Proxy.start(config)) {
                flaky.checks(5);
                served(proxy, 4);
                assertEquals(2, flaky.requests.size(), "still in rotation");
                assertEquals(0, TestSupport.count(TestSupport.errorLog(config), "out of rotation"));
            }
        }
    }

    @Test
    void aCheckWithNoAnswerWithinConnectAndReadTimeoutFails() throws Exception {
        try (var good = new App("good"); var hung = new App("hung")) {
            hung.health = n -> 0; // reads the check and never answers
            Config config = config(List.of("connect_timeout", "300ms", "read_timeout", "300ms"), good, hung);
            try (var proxy = Proxy.start(config)) {
                long start = System.nanoTime();
                hung.checks(3);
                long took = (System.nanoTime() - start) / 1_000_000;
                // Each check ends after 600 ms, 200 ms apart: the third ends after about 2.2 s.
                assertTrue(took >= 1500, "three checks without an answer ended after " + took + " ms");
                assertEquals("good good good good", served(proxy, 4));
                assertEquals(1, TestSupport.awaitCount(config, 1, "upstream 127.0.0.1:" + hung.port()
                        + " failed its health check (GET /healthz: no answer within 600 ms), out of rotation"));
            }
        }
    }

    @Test
    void whenEveryServerIsOutByHealthCheckRequestsStillGoToThem() throws Exception {
        try (var a = new App("a"); var b = new App("b")) {
            a.health = n -> 500;
            b.health = n -> 404;
            Config config = config(a, b);
            try (var proxy = Proxy.start(config)) {
                a.checks(3);
                b.checks(3);
                assertEquals(2, TestSupport.awaitCount(config, 2, "out of rotation"), "both are out");
                for (int i = 0; i < 4; i++) {
                    assertEquals(200, TestSupport.exchange(TestSupport.port(proxy), GET).status(), "answered, not 502");
                }
                assertEquals(2, a.requests.size(), "both still get requests, as if there were no checks");
                assertEquals(2, b.requests.size());
            }
        }
    }

    @Test
    void theCheckIsAGetOfItsOwnNamingTheServerAndTheProxy() throws Exception {
        try (var app = new App("app")) {
            Config config = config(app);
            try (var proxy = Proxy.start(config); var client = new TestSupport.Client(TestSupport.port(proxy))) {
                Check first = app.nextCheck();
                TestSupport.Received check = first.request();
                assertEquals("GET /healthz HTTP/1.1", check.requestLine());
                assertEquals("127.0.0.1:" + app.port(), check.header("Host"));
                assertEquals("close", check.header("Connection"));
                assertEquals("proxy/" + Proxy.VERSION + " (health check)", check.header("User-Agent"));
                assertEquals(200, client.send(GET).read().status());
                int request = app.requests.take().connection();
                Check second = app.nextCheck();
                assertEquals(200, client.send(GET).read().status());
                assertEquals(request, app.requests.take().connection(), "the client's requests share a pooled connection");
                assertNotEquals(request, second.request().connection(), "a check never uses the pool's");
                assertNotEquals(check.connection(), second.request().connection(), "each check on a new connection");
            }
            // After the stop, at most the check under way comes, then none.
            int late = 0;
            while (app.checks.poll(1, TimeUnit.SECONDS) != null) late++;
            assertTrue(late <= 1, late + " checks after the stop");
        }
    }

    @Test
    void withoutHealthCheckNoCheckIsSent() throws Exception {
        CountDownLatch anything = new CountDownLatch(1);
        try (var app = new App("app")) {
            app.health = n -> {
                anything.countDown();
                return 200;
            };
            try (var proxy = TestSupport.proxy(app.port())) {
                assertEquals("app", served(proxy, 1));
                // An absence can't be waited for: the first check would come at once.
                assertFalse(anything.await(500, TimeUnit.MILLISECONDS), "no check without health_check");
                assertNull(app.checks.poll());
            }
        }
    }
}
