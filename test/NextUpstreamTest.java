import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A request goes on to the next server when one fails ({@link NextUpstream}, nginx's
 * proxy_next_upstream error timeout), only where that is safe, and within its bounds. Each
 * case is seen from the servers' side: which got the request, and how often.
 */
@Timeout(30)
class NextUpstreamTest {
    private static final String GET = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

    private static final TestSupport.Handler OK = (r, out, s) -> {
        out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        return true;
    };

    /** Reads the request, then resets the connection: a server that fails each request. */
    private static final TestSupport.Handler RESET = (r, out, s) -> {
        s.setSoLinger(true, 0);
        s.close();
        return false;
    };

    /** Reads the request and never answers. */
    private static final TestSupport.Handler SILENT = (r, out, s) -> {
        Thread.sleep(20_000);
        return false;
    };

    private static String servers(TestSupport.Backend... backends) {
        StringBuilder b = new StringBuilder();
        for (var backend : backends) b.append(b.isEmpty() ? "" : ", ").append("127.0.0.1:").append(backend.port());
        return b.toString();
    }

    @Test
    void aGetGoesOnToTheNextServerWhenOneResets() throws Exception {
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        try (var bad = new TestSupport.Backend(RESET); var good = new TestSupport.Backend(OK);
             var proxy = TestSupport.proxy(0, "upstream", servers(bad, good), "max_fails", "0",
                     "error_log", errors.toString())) {
            for (int i = 0; i < 6; i++) {
                var resp = TestSupport.exchange(TestSupport.port(proxy), GET);
                assertEquals(200, resp.status(), "request " + i);
                assertEquals("ok", resp.bodyText());
            }
            assertEquals(6, good.received.size(), "the good server answered every one");
            assertEquals(3, bad.received.size(), "round-robin sent every other one to the bad server first");
            String log = TestSupport.awaitText(errors, ", trying the next server"); // written a moment later
            assertTrue(log.contains("upstream 127.0.0.1:" + bad.port() + " failed: "), "the error log names the server that failed");
        }
    }

    @Test
    void aPostThatReachedAServerIsNeverSentToAnother() throws Exception {
        try (var bad = new TestSupport.Backend(RESET); var good = new TestSupport.Backend(OK);
             var proxy = TestSupport.proxy(0, "upstream", servers(bad, good), "max_fails", "0")) {
            int port = TestSupport.port(proxy);
            for (String request : new String[] {
                    "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
                    "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                    "PUT /file HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"}) { // a body we no longer have
                int badBefore = bad.received.size();
                int status = TestSupport.exchange(port, request).status();
                if (bad.received.size() > badBefore) {
                    assertEquals(502, status, request);
                    assertNull(good.received.poll(200, TimeUnit.MILLISECONDS), "not sent again: " + request);
                } else {
                    assertEquals(200, status, request); // round-robin chose the good one first
                }
                good.received.clear();
            }
            assertTrue(bad.received.size() >= 1, "at least one reached the bad server (round-robin)");
        }
    }

    @Test
    void aRequestThatNeverReachedAServerMayGoOnWhateverItsMethod() throws Exception {
        int refused = TestSupport.closedPort();
        try (var good = new TestSupport.Backend(OK);
             var proxy = TestSupport.proxy(0, "upstream", "127.0.0.1:" + refused + ", " + servers(good), "max_fails", "0")) {
            for (int i = 0; i < 4; i++) {
                var resp = TestSupport.exchange(TestSupport.port(proxy),
                        "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
                assertEquals(200, resp.status(), "the connect failed: nothing was sent, so the POST goes on");
            }
            assertEquals(4, good.received.size());
        }
    }

    @Test
    void nextUpstreamTriesBoundsTheServersTried() throws Exception {
        try (var a = new TestSupport.Backend(RESET); var b = new TestSupport.Backend(RESET); var c = new TestSupport.Backend(RESET)) {
            try (var proxy = TestSupport.proxy(0, "upstream", servers(a, b, c), "max_fails", "0")) {
                assertEquals(502, TestSupport.exchange(TestSupport.port(proxy), GET).status());
                assertEquals(3, a.received.size() + b.received.size() + c.received.size(), "0: each server once");
            }
            a.received.clear();
            b.received.clear();
            c.received.clear();
            try (var proxy = TestSupport.proxy(0, "upstream", servers(a, b, c), "max_fails", "0", "next_upstream_tries", "2")) {
                assertEquals(502, TestSupport.exchange(TestSupport.port(proxy), GET).status());
                assertEquals(2, a.received.size() + b.received.size() + c.received.size(), "at most 2 servers");
            }
        }
    }

    @Test
    void aTimeoutGoesOnTooButNotAfterNextUpstreamTimeout() throws Exception {
        try (var silent = new TestSupport.Backend(SILENT); var good = new TestSupport.Backend(OK)) {
            // read_timeout 300ms on the silent server, then the good one answers: 200.
            try (var proxy = TestSupport.proxy(0, "upstream", servers(silent, good), "max_fails", "0", "read_timeout", "300ms")) {
                for (int i = 0; i < 2; i++) assertEquals(200, TestSupport.exchange(TestSupport.port(proxy), GET).status());
                assertEquals(1, silent.received.size(), "one of the two went to the silent server first");
            }
            silent.received.clear();
            good.received.clear();
            // next_upstream_timeout shorter than read_timeout: after the first timeout no new try begins.
            try (var proxy = TestSupport.proxy(0, "upstream", servers(silent, good), "max_fails", "0", "read_timeout", "300ms",
                    "next_upstream_timeout", "100ms")) {
                int[] statuses = new int[2];
                for (int i = 0; i < 2; i++) statuses[i] = TestSupport.exchange(TestSupport.port(proxy), GET).status();
                assertEquals(1, silent.received.size());
                assertTrue(statuses[0] == 504 || statuses[1] == 504, "the request that met the silent server: 504");
                assertTrue(statuses[0] == 200 || statuses[1] == 200, "the other: 200");
                assertEquals(1, good.received.size(), "the timed-out one went nowhere else");
            }
        }
    }

    @Test
    void aTimeoutOnAPooledConnectionIsNotTakenForAClosedOneAndSentAgain() throws Exception {
        // A pooled connection that fails at once was closed by the server while idle: the
        // request goes again on a new one. One whose answer times out belongs to a server that
        // is slow: sent again, the request would cost it twice, and the client twice read_timeout.
        TestSupport.Handler slowOnSlow = (r, out, s) -> {
            if (r.requestLine().startsWith("GET /slow ")) return SILENT.handle(r, out, s);
            return OK.handle(r, out, s);
        };
        try (var backend = new TestSupport.Backend(slowOnSlow);
             var proxy = TestSupport.proxy(backend.port(), "read_timeout", "300ms");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            assertEquals(200, client.send(GET).read().status()); // its upstream connection is pooled now
            assertEquals(504, client.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").read().status());
            assertEquals(1, backend.next().connection());
            var slow = backend.next();
            assertEquals("GET /slow HTTP/1.1", slow.requestLine());
            assertEquals(1, slow.connection(), "it went on the pooled connection");
            assertNull(backend.received.poll(), "and nowhere else: by the 504, a second try would have arrived");
        }
    }
}
