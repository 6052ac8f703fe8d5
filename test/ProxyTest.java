import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * End to end: a real backend on port 0, the proxy in front, exact bytes on a raw socket;
 * each test asserts what the backend received and what the client got.
 */
@Timeout(30)
class ProxyTest {

    @Test
    void forwardsAGetAndSetsTheForwardingHeaders() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port())) {
            var resp = TestSupport.exchange(TestSupport.port(proxy),
                    "GET /path?q=%00%0d%0a HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\n\r\n");
            assertEquals(200, resp.status());
            assertEquals("Hello", resp.bodyText());
            assertTrue(resp.header("Date") != null, "a Date is added when the upstream sent none");

            var got = backend.next();
            assertEquals("GET /path?q=%00%0d%0a HTTP/1.1", got.requestLine(), "the target is forwarded byte for byte");
            assertEquals("example.com:8080", got.header("Host"));
            assertEquals("127.0.0.1", got.header("X-Real-IP"));
            assertEquals("127.0.0.1", got.header("X-Forwarded-For"));
            assertEquals("http", got.header("X-Forwarded-Proto"));
            assertEquals("1.1 proxy", got.header("Via"), "received-protocol: the request's own version");
            assertEquals("t", got.header("User-Agent"));
            assertNull(got.header("Content-Length"));
            assertNull(got.header("Transfer-Encoding"));

            TestSupport.exchange(TestSupport.port(proxy), "GET /old HTTP/1.0\r\nHost: a\r\nVia: 1.1 edge\r\n\r\n");
            assertEquals("1.1 edge, 1.0 proxy", backend.next().header("Via"), "an HTTP/1.0 request was received as 1.0");
        }
    }

    @Test
    void clientCanNeitherForgeNorStripTheForwardingHeaders() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port())) {
            TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n"
                    + "x-real-ip: 6.6.6.6\r\nX-Real-IP: 7.7.7.7\r\nX_Real_IP: 8.8.8.8\r\n"
                    + "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n"
                    + "Connection: X-Foo, X-Bar, X-Real-IP\r\nX-Foo: a\r\nX-Bar: b\r\nKeep-Alive: 5\r\n"
                    + "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\n\r\n");
            var got = backend.next();
            assertEquals(java.util.List.of("127.0.0.1"), got.all("X-Real-IP"));
            assertEquals(java.util.List.of("1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"), got.all("X-Forwarded-For"));
            for (String gone : new String[] {"X-Foo", "X-Bar", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                    "Upgrade", "X_Real_IP"}) {
                assertNull(got.header(gone), gone + " must not reach the upstream");
            }
        }
    }

    @Test
    void configuredHeadersAreSetAndEmptyOnesRemoved() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "header.X-Forwarded-Proto", "",
                     "header.X-Who", "$remote_addr:$remote_port via $host", "header.Via", "")) {
            TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: WWW.Example.com:81\r\n"
                    + "X-Forwarded-Proto: https\r\n\r\n");
            var got = backend.next();
            assertNull(got.header("X-Forwarded-Proto"));
            assertNull(got.header("Via"));
            assertTrue(got.header("X-Who").matches("127\\.0\\.0\\.1:\\d+ via www\\.example\\.com"), got.header("X-Who"));
        }
    }

    @Test
    void http10ClientWithoutHostGetsAHostUpstreamAndIsClosedAfterTheResponse() throws Exception {
        try (var backend = new TestSupport.Backend(raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nHello\r\n0\r\n\r\n")); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            var resp = client.read();
            assertEquals("Hello", resp.bodyText());
            assertFalse(resp.chunked(), "an HTTP/1.0 client never gets chunked");
            assertEquals("close", resp.header("Connection"));
            assertTrue(client.closedByPeer());
            assertEquals("127.0.0.1:" + backend.port(), backend.next().header("Host"));
        }
    }

    @Test
    void streamsRequestBodiesWithTheirFramingRegenerated() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
            assertEquals(200, client.read().status());
            var first = backend.next();
            assertEquals("11", first.header("Content-Length"));
            assertEquals("hello world", TestSupport.text(first.body()));

            client.send("POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
                    + "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: dropped\r\n\r\n");
            assertEquals(200, client.read().status());
            var second = backend.next();
            assertEquals("chunked", second.header("Transfer-Encoding"));
            assertEquals("hello world", TestSupport.text(second.body()));
            assertFalse(TestSupport.text(second.rawBody()).contains("ext"), "chunk extensions are not forwarded");
            assertFalse(TestSupport.text(second.rawBody()).contains("X-Trailer"), "trailers are dropped");
            assertFalse(second.head().contains("X-Trailer"), "trailers are never merged into the head");
            assertEquals(1, backend.connections.get(), "one upstream connection served both requests");
        }
    }

    @Test
    void keepsBothSidesAliveAndAnswersPipelinedRequestsInOrder() throws Exception {
        TestSupport.Handler echoPath = (r, out, s) -> {
            String path = r.requestLine().split(" ")[1];
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + path.length() + "\r\n\r\n" + path));
            return true;
        };
        try (var backend = new TestSupport.Backend(echoPath); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals("/1", client.read().bodyText());
            assertEquals("/2", client.read().bodyText());
            assertEquals("/3", client.read().bodyText());
            client.send("GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /5 HTTP/1.1\r\nHost: a\r\n\r\n");
            var last = client.read();
            assertEquals("/4", last.bodyText());
            assertEquals("close", last.header("Connection"));
            assertTrue(client.closedByPeer(), "after Connection: close the second request is not processed");
            assertEquals(1, backend.connections.get());
            for (int i = 1; i <= 4; i++) backend.next();
            assertNull(backend.received.poll(200, TimeUnit.MILLISECONDS), "/5 never reaches the upstream");
        }
    }

    @Test
    void reChunksResponsesAndDeliversEachPieceLive() throws Exception {
        CountDownLatch clientGotFirst = new CountDownLatch(1);
        TestSupport.Handler stream = (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n"));
            out.flush();
            // Until-close body: the next event only comes once the client has the first.
            if (!clientGotFirst.await(10, TimeUnit.SECONDS)) throw new AssertionError("first event never arrived");
            out.write(TestSupport.bytes("data: 2\n\n"));
            return false;
        };
        try (var backend = new TestSupport.Backend(stream); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
            String head = TestSupport.readHead(client.in);
            assertTrue(head.contains("Transfer-Encoding: chunked"), head);
            assertEquals("9", TestSupport.readLine(client.in));
            assertEquals("data: 1\n\n", TestSupport.text(client.in.readNBytes(9)));
            clientGotFirst.countDown();
            assertEquals("", TestSupport.readLine(client.in));
            assertEquals("9", TestSupport.readLine(client.in));
            assertEquals("data: 2\n\n", TestSupport.text(client.in.readNBytes(9)));
            assertEquals("", TestSupport.readLine(client.in));
            assertEquals("0", TestSupport.readLine(client.in));
        }
    }

    @Test
    void streamsALargeBodyBothWaysWithoutChangingAByte() throws Exception {
        byte[] big = new byte[5 << 20];
        new java.util.Random(1).nextBytes(big);
        TestSupport.Handler echo = (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + r.body().length + "\r\n\r\n"));
            out.write(r.body());
            return true;
        };
        try (var backend = new TestSupport.Backend(echo); var proxy = TestSupport.proxy(backend.port(),
                "client_max_body_size", "0"); var client = new TestSupport.Client(TestSupport.port(proxy))) {
            Thread writer = Thread.ofVirtual().start(() -> {
                try {
                    client.send("PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: " + big.length + "\r\n\r\n");
                    client.out.write(big);
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            var resp = client.read();
            writer.join();
            assertTrue(Arrays.equals(big, resp.body()), "the body arrives intact");
        }
    }

    @Test
    void headAnd304And204ResponsesCarryNoBody() throws Exception {
        TestSupport.Handler h = (r, out, s) -> {
            String path = r.requestLine().split(" ")[1];
            String resp = switch (path) {
                case "/304" -> "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
                case "/204" -> "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n";
                default -> "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                        + (r.requestLine().startsWith("HEAD") ? "" : "0123456789");
            };
            out.write(TestSupport.bytes(resp));
            return true;
        };
        try (var backend = new TestSupport.Backend(h); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
            var head = client.read(true);
            assertEquals("10", head.header("Content-Length"), "HEAD keeps the representation's length");
            client.send("GET /304 HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(304, client.read().status());
            client.send("GET /204 HTTP/1.1\r\nHost: a\r\n\r\n");
            var noContent = client.read();
            assertEquals(204, noContent.status());
            assertNull(noContent.header("Content-Length"));
            client.send("GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
            // If any bodiless response had leaked bytes, this would be out of step.
            assertEquals(200, client.read().status());
        }
    }

    @Test
    void anEmptyBodyWithContentLengthZeroKeepsItsFramingBothWays() throws Exception {
        try (var backend = new TestSupport.Backend((r, out, s) -> {
                out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
                return true;
            }); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
            var first = client.read();
            assertEquals("0", first.header("Content-Length"), "else the client would read until close");
            assertEquals("0", backend.next().header("Content-Length"), "RFC 9110 8.6: a POST says its length");
            client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status(), "the connection is still in step");
        }
    }

    @Test
    void aPooledConnectionTheUpstreamHasClosedIsNotUsedAgain() throws Exception {
        // Keeps the connection "alive" per HTTP, but closes it right after each response.
        CountDownLatch closed = new CountDownLatch(1);
        TestSupport.Handler closeAfter = (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
            out.flush();
            s.close();
            closed.countDown();
            return false;
        };
        try (var backend = new TestSupport.Backend(closeAfter); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            // One client connection: the upstream connection is back in the pool before the
            // proxy reads the next request from it.
            client.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status());
            assertTrue(closed.await(10, TimeUnit.SECONDS));
            // The upstream's FIN is in by now: the check before reuse sees it, so even a POST,
            // which could not be sent again, goes out on a new connection and succeeds.
            client.send("POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx");
            assertEquals(200, client.read().status());
            assertEquals(1, backend.next().connection());
            var post = backend.next();
            assertEquals("POST /2 HTTP/1.1", post.requestLine());
            assertEquals(2, post.connection(), "a new upstream connection");
            assertNull(backend.received.poll(200, TimeUnit.MILLISECONDS), "the POST was sent once");
        }
    }

    @Test
    void aGetLostOnADeadPooledConnectionIsRetriedButARequestWithABodyIs502() throws Exception {
        // Each upstream connection answers its first request, then reads the second and
        // closes without answering: to the proxy the pooled connection looked alive (no FIN
        // before reuse), and the exchange fails after the request went out.
        java.util.Map<Integer, Integer> served = new java.util.concurrent.ConcurrentHashMap<>();
        TestSupport.Handler onceEach = (r, out, s) -> {
            if (served.merge(r.connection(), 1, Integer::sum) > 1) return false;
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
            return true;
        };
        try (var backend = new TestSupport.Backend(onceEach); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status());
            client.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
            var retried = client.read();
            assertEquals(200, retried.status(), "an idempotent request without a body is sent again");
            assertEquals("ok", retried.bodyText());
            client.send("POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
            assertEquals(502, client.read().status(), "a POST may have been acted on: never sent twice");
            client.send("GET /4 HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status());
            client.send("PUT /5 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
            assertEquals(502, client.read().status(), "a PUT is idempotent, but its body was sent and is gone");

            String[] expected = {"GET /1 HTTP/1.1 on 1", "GET /2 HTTP/1.1 on 1", "GET /2 HTTP/1.1 on 2",
                "POST /3 HTTP/1.1 on 2", "GET /4 HTTP/1.1 on 3", "PUT /5 HTTP/1.1 on 3"};
            for (String e : expected) {
                var got = backend.next();
                assertEquals(e, got.requestLine() + " on " + got.connection());
            }
            assertNull(backend.received.poll(200, TimeUnit.MILLISECONDS), "neither the POST nor the PUT was retried");
            assertEquals(3, backend.connections.get());
        }
    }

    @Test
    void refusedUpstreamIs502AndTheClientConnectionStaysUsable() throws Exception {
        try (var proxy = TestSupport.proxy(TestSupport.closedPort());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            var resp = client.read();
            assertEquals(502, resp.status());
            assertEquals("502 Bad Gateway\n", resp.bodyText());
            client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(502, client.read().status());
        }
    }

    @Test
    void failsOverToTheNextServerAndTakesADeadOneOut() throws Exception {
        // A refused connect moves on to the next server: every request is answered.
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(0,
                "upstream", "127.0.0.1:" + TestSupport.closedPort() + ", 127.0.0.1:" + backend.port() + " weight=2")) {
            for (int i = 0; i < 6; i++) {
                assertEquals(200, TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status());
            }
            assertEquals(6, backend.received.size(), "the live server answered them all");
        }
        // A server that accepts, reads the request and hangs up: its accepts show whether it
        // is still chosen. Round-robin alone would send it 2 of these 6 requests; after its
        // first failure (max_fails = 1) it is out for fail_timeout and gets no more. The GET
        // it failed goes on to the live server (NextUpstream), so all 6 are answered.
        try (var dead = new TestSupport.Backend((r, out, s) -> false); var live = new TestSupport.Backend();
             var proxy = TestSupport.proxy(0, "upstream", "127.0.0.1:" + dead.port() + ", 127.0.0.1:" + live.port()
                     + " weight=2", "max_fails", "1", "fail_timeout", "30s")) {
            for (int i = 0; i < 6; i++) {
                assertEquals(200, TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status());
            }
            assertEquals(1, dead.connections.get(), "the dead server was taken out after one failure");
            assertEquals(6, live.received.size());
        }
    }

    @Test
    void forwardsInterimResponsesThenTheFinalOne() throws Exception {
        try (var backend = new TestSupport.Backend(raw("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
             var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            var early = client.read();
            assertEquals(103, early.status());
            assertEquals("</s.css>", early.header("Link"));
            var last = client.read();
            assertEquals(200, last.status());
            assertEquals("ok", last.bodyText());
        }
    }

    @Test
    void atMostTenInterimResponsesPassAndAnEleventhIs502() throws Exception {
        // The cap is Config.MAX_INTERIM_RESPONSES, documented as 10: the numbers are written
        // out, so that a change of the cap shows here.
        for (int interim : new int[] {10, 11}) {
            String early = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n";
            try (var backend = new TestSupport.Backend(raw(early.repeat(interim) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
                 var proxy = TestSupport.proxy(backend.port());
                 var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                int forwarded = 0;
                var resp = client.read();
                for (; resp.status() == 103; resp = client.read()) forwarded++;
                if (interim == 10) {
                    assertEquals(200, resp.status());
                    assertEquals(interim, forwarded, "every interim response up to the cap is passed on");
                } else {
                    assertEquals(502, resp.status(), interim + " interim responses");
                    assertEquals(10, forwarded, "none beyond the cap is passed on");
                }
            }
        }
    }

    @Test
    void anHttp10ClientGetsNoInterimResponses() throws Exception {
        try (var backend = new TestSupport.Backend(raw("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
             var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.0\r\n\r\n");
            var resp = client.read();
            assertEquals(200, resp.status(), "RFC 9110 15.2: no 1xx to an HTTP/1.0 client");
            assertEquals("ok", resp.bodyText());
            assertTrue(client.closedByPeer());
        }
    }

    @Test
    void aHeadRequestAnsweredWithAnErrorGetsNoBody() throws Exception {
        try (var proxy = TestSupport.proxy(TestSupport.closedPort());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
            var head = client.read(true);
            assertEquals(502, head.status());
            assertEquals(Integer.toString("502 Bad Gateway\n".length()), head.header("Content-Length"),
                    "the length the GET would have (RFC 9110 9.3.2)");
            // If the HEAD answer had carried its body, this response would be out of step.
            client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            var get = client.read();
            assertEquals(502, get.status());
            assertEquals("502 Bad Gateway\n", get.bodyText());
            client.socket.setSoTimeout(200);
            assertThrows(java.net.SocketTimeoutException.class, () -> client.in.read(),
                    "the connection stays open and holds no stray bytes");
        }
    }

    @Test
    void expect100ContinueIsAnsweredByTheProxyAndOtherExpectationsAre417() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
            assertEquals(100, client.read().status());
            client.send("abcGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, client.read().status());
            assertEquals(200, client.read().status());
            var got = backend.next();
            assertNull(got.header("Expect"));
            assertEquals("abc", TestSupport.text(got.body()));
            assertEquals("GET /next HTTP/1.1", backend.next().requestLine());
        }
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port())) {
            var resp = TestSupport.exchange(TestSupport.port(proxy),
                    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: foo\r\n\r\nabc");
            assertEquals(417, resp.status());
        }
    }

    @Test
    void webSocketUpgradeTunnelsBytesBothWays() throws Exception {
        TestSupport.Handler ws = TestSupport.WEBSOCKET_PONG;
        try (var backend = new TestSupport.Backend(ws); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                    + "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\nping");
            var head = TestSupport.readHead(client.in);
            assertTrue(head.startsWith("HTTP/1.1 101"), head);
            assertTrue(head.contains("Upgrade: websocket"), head);
            assertEquals("pong:ping", TestSupport.text(client.in.readNBytes(9)));
            assertEquals(-1, client.in.read(), "the upstream's half-close reaches the client");
            var got = backend.next();
            assertEquals("websocket", got.header("Upgrade"));
            assertEquals("upgrade", got.header("Connection"));
        }
    }

    @Test
    void accessLogUsesNginxCombinedFormat() throws Exception {
        var log = java.nio.file.Files.createTempFile("access", ".log");
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(), "access_log", log.toString());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET /x?y HTTP/1.1\r\nHost: a\r\nReferer: http://r/\r\n"
                    + "User-Agent: ua \"q\"\r\nConnection: close\r\n\r\n");
            assertEquals(200, client.read().status());
            // The line is handed to the log's writer after the response and before the
            // connection closes; the writer writes it soon after.
            assertTrue(client.closedByPeer());
            String line = TestSupport.awaitLines(log, 1);
            assertTrue(line.matches("127\\.0\\.0\\.1 - - \\[\\d\\d/\\w{3}/\\d{4}:\\d\\d:\\d\\d:\\d\\d [+-]\\d{4}] "
                    + "\"GET /x\\?y HTTP/1\\.1\" 200 5 \"http://r/\" \"ua \\\\x22q\\\\x22\"\n"), line);
        } finally {
            java.nio.file.Files.delete(log);
        }
    }

    @Test
    void anErrorAnswerHonoursTheClientsCloseAndHttp10() throws Exception {
        TestSupport.Handler hangUp = (r, out, sock) -> false; // reads the request, answers nothing
        try (var backend = new TestSupport.Backend(hangUp); var proxy = TestSupport.proxy(backend.port())) {
            try (var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /canary HTTP/1.1\r\nHost: x\r\n\r\n");
                var resp = client.read();
                assertEquals(502, resp.status());
                assertEquals("close", resp.header("Connection"));
                assertTrue(client.closedByPeer(), "the request after Connection: close is not served");
            }
            try (var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("GET /b HTTP/1.0\r\n\r\n");
                assertEquals(502, client.read().status());
                assertTrue(client.closedByPeer(), "an HTTP/1.0 client is closed after an error too");
            }
            for (var got = backend.received.poll(200, TimeUnit.MILLISECONDS); got != null;
                 got = backend.received.poll(200, TimeUnit.MILLISECONDS)) {
                assertFalse(got.requestLine().contains("canary"), "the canary reached the upstream");
            }
        }
    }

    @Test
    void aResponseCutShortEndsWithAResetNotAnOrderlyClose() throws Exception {
        TestSupport.Handler cut = (r, out, sock) -> {
            out.write(TestSupport.bytes("HTTP/1.0 200 OK\r\n\r\npartial"));
            out.flush();
            sock.setSoLinger(true, 0); // the upstream dies mid-body
            return false;
        };
        try (var backend = new TestSupport.Backend(cut); var proxy = TestSupport.proxy(backend.port());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.0\r\n\r\n");
            assertTrue(TestSupport.readHead(client.in).startsWith("HTTP/1.1 200"));
            // For a body that runs until the close, an orderly end of stream would mean "complete".
            // The reset must come at once: a read timeout (a proxy that never ends the
            // response) is a failure too, and so is a FIN.
            client.socket.setSoTimeout(5000);
            long start = System.nanoTime();
            var body = new java.io.ByteArrayOutputStream();
            var end = assertThrows(java.net.SocketException.class, () -> {
                for (int b; (b = client.in.read()) >= 0; ) body.write(b);
            }, "the response must end with a reset");
            long took = (System.nanoTime() - start) / 1_000_000;
            assertEquals("Connection reset", end.getMessage());
            assertEquals("partial", body.toString(java.nio.charset.StandardCharsets.ISO_8859_1), "what came is passed on");
            assertTrue(took < 3000, "the reset came after " + took + " ms");
        }
    }

    @Test
    void upstreamHeadsThatCantBeTrustedAre502() throws Exception {
        String[][] cases = {
            // request extra header, upstream response, why
            {"Upgrade: foo\r\nConnection: upgrade\r\n", "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n", "101 without Upgrade"},
            {"Upgrade: foo\r\nConnection: upgrade\r\n", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: bar\r\nConnection: upgrade\r\n\r\n", "101 to another protocol"},
            {"", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n", "bad chunk, head not yet sent"},
        };
        for (String[] c : cases) {
            try (var backend = new TestSupport.Backend(raw(c[1])); var proxy = TestSupport.proxy(backend.port())) {
                var resp = TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a\r\n" + c[0] + "\r\n");
                assertEquals(502, resp.status(), c[2]);
            }
        }
    }

    @Test
    void aHeadResponsesLengthIsPassedOnOnlyWhenValid() throws Exception {
        try (var backend = new TestSupport.Backend(raw("HTTP/1.1 200 OK\r\nContent-Length: 5, 7\r\n\r\n"));
             var proxy = TestSupport.proxy(backend.port())) {
            var resp = TestSupport.exchange(TestSupport.port(proxy), "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
            assertEquals(200, resp.status());
            assertNull(resp.header("Content-Length"), "a malformed length is dropped, never forwarded verbatim");
        }
    }

    static TestSupport.Handler raw(String response) {
        return TestSupport.raw(response);
    }
}
