import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Several apps behind one proxy: named upstream groups and route.NAME keys. First the table
 * on its own (Routes.match, a pure function), then the configuration's errors, then real
 * backends behind a real proxy.
 */
@Timeout(30)
class RoutesTest {

    /** Routes that overlap every way: exact, wildcard, dot-wildcard and hostless; by prefix. */
    private static final Map<String, String> TABLE = Map.ofEntries(
            Map.entry("route.a", "api.example.com/ -> api"),
            Map.entry("route.b", "api.example.com/v2/ -> admin"),
            Map.entry("route.c", "*.example.com/ -> web"),
            Map.entry("route.d", ".example.org/ -> api"),
            Map.entry("route.e", "/admin/ -> admin"),
            Map.entry("route.f", "/admin/secret/ -> api"),
            Map.entry("route.g", "*.a.example.com/ -> admin"),
            Map.entry("route.h", "/static -> web"),
            Map.entry("route.i", "shop.example.net/cart/ -> web"));

    private static Map<String, String> groups(boolean withDefault) {
        Map<String, String> m = new LinkedHashMap<>();
        if (withDefault) m.put("upstream", "127.0.0.1:5000");
        m.put("upstream.api", "127.0.0.1:5001");
        m.put("upstream.admin", "127.0.0.1:5002");
        m.put("upstream.web", "127.0.0.1:5003");
        return m;
    }

    /** The table in a shuffled order: the order of the keys must never matter. */
    private static Routes table(long seed, boolean withDefault) throws Exception {
        List<Map.Entry<String, String>> entries = new ArrayList<>(TABLE.entrySet());
        Collections.shuffle(entries, new Random(seed));
        Map<String, String> m = groups(withDefault);
        for (var e : entries) m.put(e.getKey(), e.getValue());
        return Config.from(m, "test").routes();
    }

    @ParameterizedTest(name = "{0} {1} -> {2}")
    @CsvSource(delimiter = '|', value = {
            "api.example.com | /x | route a",
            "API.Example.COM.:8080 | /v2/x | route b",          // case, port and trailing dot ignored
            "api.example.com | /v2 | 301 /v2/",                 // only /v2/ is routed: nginx's 301
            "api.example.com | /v2?q=1 | 301 /v2/?q=1",
            "www.example.com | / | route c",
            "www.example.com | /admin/x | route c",             // the host's own routes first
            "example.com | /admin/x | route e",                 // *.example.com: subdomains only
            "example.com | /x | default",
            "x.a.example.com | / | route g",                    // the longest wildcard
            "a.example.com | / | route c",
            "example.org | / | route d",                        // .example.org: the name itself
            "w.example.org | / | route d",                      // ... and its subdomains
            "other | /admin/x | route e",
            "other | /admin | 301 /admin/",
            "other | /admin/secret/x | route f",                // the longest prefix
            "other | /static.css | route h",
            "other | /x | default",
            "shop.example.net | /cart/1 | route i",
            "shop.example.net | /admin/ | route e",             // the host's routes don't match: hostless
            "shop.example.net | /other | default",              // then the default group
            "- | /admin/ | route e",                            // no Host (HTTP/1.0)
    })
    void matchFollowsNginxWhateverTheOrder(String host, String target, String expected) throws Exception {
        for (long seed = 0; seed < 5; seed++) {
            Routes.Decision d = table(seed, true).match(host.equals("-") ? null : host, target);
            assertEquals(expected, describe(d), "seed " + seed);
        }
    }

    private static String describe(Routes.Decision d) {
        return switch (d) {
            case Routes.Route r -> r.name() == null ? "default" : "route " + r.name();
            case Routes.Redirect r -> "301 " + r.location();
            case Routes.NotFound n -> "404";
        };
    }

    @Test
    void withoutADefaultGroupWhatMatchesNoRouteIs404() throws Exception {
        Routes r = table(1, false);
        assertEquals("404", describe(r.match("other", "/x")));
        assertEquals("route e", describe(r.match("other", "/admin/")));
        assertNull(r.fallback());
    }

    @Test
    void withoutRoutesEveryRequestGoesToTheDefaultGroup() throws Exception {
        Config c = Config.from(Map.of(), "test");
        assertTrue(c.routes().isEmpty());
        assertEquals("default", describe(c.routes().match("any", "/admin")));
        assertEquals(Config.DEFAULT_GROUP, ((Routes.Route) c.routes().match("any", "/")).group());
    }

    @Test
    void stripPrefixKeepsThePathAbsolute() throws Exception {
        Map<String, String> m = groups(true);
        m.put("route.admin", "/admin/ -> admin");
        m.put("route.admin.strip_prefix", "on");
        m.put("route.old", "/old -> admin");
        m.put("route.old.strip_prefix", "on");
        Routes routes = Config.from(m, "test").routes();
        Routes.Route admin = (Routes.Route) routes.match("h", "/admin/x");
        assertEquals("/x?y=1", admin.target("/admin/x?y=1"));
        assertEquals("/", admin.target("/admin/"));
        Routes.Route old = (Routes.Route) routes.match("h", "/old");
        assertEquals("/", old.target("/old"));
        assertEquals("/?a", old.target("/old?a"));
        assertEquals("/x", old.target("/old/x"));
    }

    @Test
    void groupsTakeTheGlobalKeysAndTheirOwn() throws Exception {
        Map<String, String> m = groups(true);
        m.put("max_fails", "2");
        m.put("upstream.api.max_fails", "5");
        m.put("upstream.api.health_check", "/healthz");
        m.put("upstream.api.upstream_keepalive", "0");
        Config c = Config.from(m, "test");
        Config api = c.groups().get("api");
        assertEquals(5, api.maxFails());
        assertEquals("/healthz", api.healthCheck());
        assertEquals(0, api.upstreamKeepalive());
        assertEquals(2, c.groups().get("web").maxFails(), "the global key is the default");
        assertEquals("", c.groups().get("web").healthCheck());
        assertEquals(2, c.maxFails());
        assertEquals(5001, api.upstream().get(0).address().getPort());
    }

    @Test
    void aRoutesHeaderOverridesThatHeaderOnly() throws Exception {
        Map<String, String> m = groups(true);
        m.put("route.api", "/api/ -> api");
        m.put("route.api.header.x-real-ip", "");
        m.put("route.api.header.X-App", "api $host");
        m.put("route.api.read_timeout", "2s");
        m.put("route.api.client_max_body_size", "10k");
        Routes.Route r = (Routes.Route) Config.from(m, "test").routes().match("h", "/api/");
        Map<String, String> h = r.settings().headers();
        assertEquals("", h.get("x-real-ip"), "removed for this route");
        assertNull(h.get("X-Real-IP"), "one spelling: the route's");
        assertEquals("$http_host", h.get("Host"), "the other globals still apply");
        assertEquals("api $host", h.get("X-App"));
        assertEquals(Duration.ofSeconds(2), r.settings().readTimeout());
        assertEquals(10 * 1024, r.settings().clientMaxBodySize());
    }

    // ---- errors at start ----------------------------------------------------------

    private static List<String> problems(String... keyValues) {
        Map<String, String> m = groups(true);
        for (int i = 0; i < keyValues.length; i += 2) m.put(keyValues[i], keyValues[i + 1]);
        return assertThrows(Config.Invalid.class, () -> Config.from(m, "f")).problems();
    }

    @Test
    void conflictingRoutesNameBothKeys() {
        List<String> p = problems("route.one", "API.example.com/a/ -> api", "route.two", "api.example.com/a/ -> web");
        assertEquals(1, p.size(), p.toString());
        assertTrue(p.get(0).contains("'route.one'") && p.get(0).contains("'route.two'"), p.get(0));
        p = problems("route.one", "*.example.com/ -> api", "route.two", ".example.com/ -> web");
        assertTrue(p.get(0).contains("'route.one'") && p.get(0).contains("'route.two'"), p.get(0));
    }

    @Test
    void twoHeaderKeysOfARouteThatNameOneHeaderAreAProblem() {
        List<String> p = problems("route.e", "/e/ -> api", "route.e.header.X-A", "1", "route.e.header.x-a", "2");
        assertEquals(1, p.size(), p.toString());
        assertTrue(p.get(0).contains("'route.e.header.X-A' and 'route.e.header.x-a' name the same header"), p.get(0));
    }

    @Test
    void aRouteToAnUnknownGroupNamesTheRouteAndTheMissingKey() {
        List<String> p = problems("route.x", "/x/ -> nope");
        assertEquals(List.of("f: key 'route.x': no upstream group 'nope' (no key 'upstream.nope')"), p);
    }

    @ParameterizedTest(name = "{0} = ''{1}''")
    @CsvSource(delimiter = '|', value = {
            "upstream.api.max_fails | many | key 'upstream.api.max_fails'",
            "upstream.api.max_fail | 2 | unknown key 'upstream.api.max_fail'",
            "upstream.api.upstream | 127.0.0.1:1 | unknown key 'upstream.api.upstream'",
            "upstream.a.b | 127.0.0.1:1 | unknown key 'upstream.a.b'",
            "status_listen | 8081 | key 'status_listen'",
            "upstream.api | 127.0.0.1:5000 weight=0 | key 'upstream.api'",
            "upstream.default | 127.0.0.1:5000 | key 'upstream.default'",
            "upstream.new.max_fails | 2 | without 'upstream.new'",
            "route.x | -> api | key 'route.x'",
            "route.x | /x/ | key 'route.x': no '-> GROUP'",
            "route.x | bad host/ -> api | key 'route.x'",
            "route.x.strip_prefix | on | without 'route.x'",
            "route.e.strip_prefix | yes | key 'route.e.strip_prefix'",
            "route.e.retrun | 301 /x | unknown key 'route.e.retrun'",
            "route.e.return | 301 | key 'route.e.return'",
            "route.e.return | 200 $bogus | key 'route.e.return'",
            "route.e.read_timeout | 1d | key 'route.e.read_timeout'",
            "route.e.header.X-A | $nope | key 'route.e.header.X-A'",
    })
    void badGroupAndRouteKeysAreNamed(String key, String value, String expected) {
        List<String> p = problems("route.e", "/e/ -> api", key, value);
        assertEquals(1, p.size(), p.toString());
        assertTrue(p.get(0).contains(expected), p.get(0));
    }

    // ---- end to end ---------------------------------------------------------------

    /** A backend that answers with its name. */
    private static TestSupport.Backend app(String name) throws Exception {
        return new TestSupport.Backend((r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + name.length() + "\r\n\r\n" + name));
            return true;
        });
    }

    private static String get(int port, String host, String target) {
        return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
    }

    @Test
    void requestsReachTheirAppsWithTheirRoutesSettings() throws Exception {
        CountDownLatch never = new CountDownLatch(1);
        Path accessLog = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (var web = app("web"); var api = app("api"); var admin = app("admin");
             var slow = new TestSupport.Backend((r, out, s) -> {
                 never.await(20, TimeUnit.SECONDS);
                 return false;
             });
             Proxy proxy = TestSupport.proxy(web.port(),
                     "upstream.api", "127.0.0.1:" + api.port(),
                     "upstream.admin", "127.0.0.1:" + admin.port(),
                     "upstream.slow", "127.0.0.1:" + slow.port(),
                     "route.api", "api.example.com/ -> api",
                     "route.api.header.X-App", "api",
                     "route.admin", "/admin/ -> admin",
                     "route.admin.strip_prefix", "on",
                     "route.admin.client_max_body_size", "10",
                     "route.slow", "/slow/ -> slow",
                     "route.slow.read_timeout", "300ms",
                     "route.old", "old.example.com",
                     "route.old.return", "301 https://new.example.com$request_uri",
                     "access_log", accessLog.toString(),
                     "log_format", "$route $upstream_name $status $request")) {
            int port = TestSupport.port(proxy);

            var r = TestSupport.exchange(port, get(port, "API.example.com", "/v1/users"));
            assertEquals("api", r.bodyText());
            var received = api.next();
            assertEquals("GET /v1/users HTTP/1.1", received.requestLine());
            assertEquals("api", received.header("X-App"), "the route's header");
            assertEquals("127.0.0.1", received.header("X-Real-IP"), "the global headers still apply");

            // Absolute-form: its authority is the host, routed by and forwarded as one (never one and the other).
            r = TestSupport.exchange(port, "GET http://api.example.com/v1 HTTP/1.1\r\nHost: www.other.com\r\n\r\n");
            assertEquals("api", r.bodyText());
            received = api.next();
            assertEquals("GET /v1 HTTP/1.1", received.requestLine());
            assertEquals("api.example.com", received.header("Host"));

            assertEquals("admin", TestSupport.exchange(port, get(port, "any", "/admin/x?y=1")).bodyText());
            assertEquals("GET /x?y=1 HTTP/1.1", admin.next().requestLine(), "strip_prefix");
            assertEquals("admin", TestSupport.exchange(port, get(port, "any", "/admin/")).bodyText());
            assertEquals("GET / HTTP/1.1", admin.next().requestLine());

            r = TestSupport.exchange(port, get(port, "any", "/admin"));
            assertEquals(301, r.status());
            assertEquals("/admin/", r.header("Location"));

            assertEquals("web", TestSupport.exchange(port, get(port, "any", "/other")).bodyText(), "the default group");
            assertEquals("GET /other HTTP/1.1", web.next().requestLine());

            r = TestSupport.exchange(port, "POST /admin/up HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n"
                    + "x".repeat(20));
            assertEquals(413, r.status(), "the route's client_max_body_size");
            r = TestSupport.exchange(port, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n" + "x".repeat(20));
            assertEquals(200, r.status(), "the global one elsewhere");
            web.next();

            r = TestSupport.exchange(port, get(port, "old.example.com", "/p?q=1"));
            assertEquals(301, r.status());
            assertEquals("https://new.example.com/p?q=1", r.header("Location"), "return, with $request_uri");

            long t0 = System.nanoTime();
            r = TestSupport.exchange(port, get(port, "any", "/slow/x"));
            assertEquals(504, r.status(), "the route's read_timeout");
            assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(5).toNanos());

            r = TestSupport.exchange(port, get(port, "any", "/public/../admin/"));
            assertEquals(400, r.status(), "a dot-segment could reach another route's app");

            String log = TestSupport.awaitLines(accessLog, 11);
            assertTrue(log.contains("api api 200 GET /v1/users HTTP/1.1\n"), log);
            assertTrue(log.contains("admin admin 200 GET /admin/x?y=1 HTTP/1.1\n"), log);
            assertTrue(log.contains("- default 200 GET /other HTTP/1.1\n"), log);
            assertTrue(log.contains("old - 301 GET /p?q=1 HTTP/1.1\n"), log);
            assertTrue(log.contains("slow slow 504 GET /slow/x HTTP/1.1\n"), log);
            assertTrue(web.received.isEmpty() && api.received.isEmpty() && admin.received.isEmpty(),
                    "nothing else reached an app");
        } finally {
            never.countDown();
        }
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
            "/%69nternal/x | /internal/x",          // what an app reads: each ASCII escape decoded
            "/%7e%2D%5f.%2E%40%3b | /~-_..@;",
            "/a%2Fb%2f | /a/b/",                    // '/' too (WSGI's PATH_INFO)
            "//internal//x/ | /internal/x/",        // runs of '/' made one, as nginx's merge_slashes
            "/caf%c3%a9%25 | /caf%C3%A9%",          // other bytes stay escaped, in capitals
            "/a%3fb%23/../ | /a%3Fb%23/../",        // and '?' and '#': the path goes on
            "/a?x=%69//y | /a?x=%69//y",            // the query is left alone
            "/ | /",
    })
    void routesCheckThePathAsAnAppReadsIt(String target, String asRead) {
        assertEquals(asRead, Routes.asRead(target));
    }

    @Test
    void aPathThatReadsAsAnotherRoutesIsRefusedAndTheRestGoesOnAsItCame() throws Exception {
        // route.internal answers 403 for /internal/ (and /@internal/); the app behind the
        // default group would read each of the 400s as /internal/... (Flask decodes escapes,
        // %2F too, and merges "//"). Routes compare paths as they come and send them on so.
        try (var web = app("web"); var admin = app("admin");
             Proxy proxy = TestSupport.proxy(web.port(),
                     "upstream.admin", "127.0.0.1:" + admin.port(),
                     "route.internal", "/internal/",
                     "route.internal.return", "403 no",
                     "route.at", "/@internal/",
                     "route.at.return", "403 no",
                     "route.admin", "/admin/ -> admin",
                     "route.admin.strip_prefix", "on")) {
            int port = TestSupport.port(proxy);
            assertEquals(403, TestSupport.exchange(port, get(port, "a", "/internal/secret")).status());
            for (String target : new String[] {"/%69nternal/secret", "//internal/secret", "/internal%2Fsecret",
                    "/%2Finternal/secret", "/%40internal/x", "/a/..%2Finternal/", "/%2e/internal/secret", "/admin%2fx",
                    "/%61dmin/x", "/x%3F/../internal/"}) {
                assertEquals(400, TestSupport.exchange(port, get(port, "a", target)).status(), target);
            }
            // Where the reading changes no route, the target goes on as it came: '//', escapes and all.
            for (String target : new String[] {"/fetch/https://example.com/a.png", "/files/a%2Fb", "/%7Euser/x"}) {
                assertEquals("web", TestSupport.exchange(port, get(port, "a", target)).bodyText(), target);
                assertEquals("GET " + target + " HTTP/1.1", web.next().requestLine());
            }
            assertEquals("admin", TestSupport.exchange(port, get(port, "a", "/admin/x%2Fy")).bodyText());
            assertEquals("GET /x%2Fy HTTP/1.1", admin.next().requestLine(), "strip_prefix, the rest as it came");
            assertTrue(web.received.isEmpty() && admin.received.isEmpty(), "nothing else reached an app");
        }
    }

    @Test
    void aPrefixMustBeWrittenAsAnAppReadsIt() {
        List<String> p = problems("route.e", "/%7Euser/ -> api");
        assertEquals(1, p.size(), p.toString());
        assertTrue(p.get(0).contains("key 'route.e': write the path prefix as an app reads it") && p.get(0).contains("('/~user/')"),
                p.get(0));
        p = problems("route.e", "/x//y/ -> api");
        assertTrue(p.get(0).contains("('/x/y/')"), p.toString());
        p = problems("route.e", "/x%zz/ -> api");
        assertTrue(p.get(0).contains("key 'route.e'"), p.toString());
        assertTrue(problems("route.e", "/caf%C3%A9/ -> api", "route.x", "/x/ -> nope").stream()
                .noneMatch(l -> l.contains("route.e")), "escapes of other bytes, in capitals, are the form");
    }

    @Test
    void withoutADefaultGroupTheProxySaysSoAndAnswers404() throws Exception {
        try (var api = app("api")) {
            Path errorLog = Files.createTempFile(TestSupport.TEMP, "error", ".log");
            Map<String, String> m = new LinkedHashMap<>();
            m.put("listen", "127.0.0.1:0");
            m.put("access_log", "off");
            m.put("error_log", errorLog.toString());
            m.put("upstream.api", "127.0.0.1:" + api.port());
            m.put("route.api", "api.example.com/ -> api");
            try (Proxy proxy = Proxy.start(Config.from(m, "test"))) {
                int port = TestSupport.port(proxy);
                assertEquals("api", TestSupport.exchange(port, get(port, "api.example.com", "/")).bodyText());
                try (var c = new TestSupport.Client(port)) {
                    c.send(get(port, "www.example.com", "/") + get(port, "api.example.com", "/again"));
                    assertEquals(404, c.read().status());
                    assertEquals("api", c.read().bodyText(), "a 404 keeps the connection");
                }
                TestSupport.awaitText(errorLog, "no default group");
            }
            assertInstanceOf(Routes.NotFound.class, Config.from(m, "test").routes().match("x", "/"));
        }
    }

    @Test
    void theReadmesTwoAppSetupRoutesAsItSays() throws Exception {
        String readme = Files.readString(Path.of("README.md"));
        int start = readme.indexOf("```properties\nlisten = [::]:8080");
        assertTrue(start >= 0, "the README's two-app setup");
        String block = readme.substring(readme.indexOf('\n', start) + 1, readme.indexOf("```", start + 3));
        java.util.Properties p = new java.util.Properties();
        p.load(new java.io.StringReader(block));
        Map<String, String> m = new java.util.TreeMap<>();
        p.stringPropertyNames().forEach(k -> m.put(k, p.getProperty(k).strip()));
        Config c = Config.from(m, "README.md");
        Routes r = c.routes();
        assertEquals("route api", describe(r.match("api.example.com", "/v1")));
        assertEquals("route api-path", describe(r.match("www.example.com", "/api/v1")));
        assertEquals("route admin", describe(r.match("www.example.com", "/admin/users")));
        assertEquals("/users", ((Routes.Route) r.match("www.example.com", "/admin/users")).target("/admin/users"));
        assertEquals("301 /admin/", describe(r.match("www.example.com", "/admin")));
        assertEquals("route old", describe(r.match("old.example.com", "/x")));
        assertEquals("default", describe(r.match("www.example.com", "/")));
        assertEquals(3, c.groups().get("api").maxFails());
        assertEquals(2, c.groups().get("api").upstream().size());
    }
}
