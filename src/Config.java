import java.io.IOException;
import java.io.Reader;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The proxy's settings: one {@code .properties} file whose keys follow nginx's directive
 * names (proxy_read_timeout becomes read_timeout, and so on). Every default lives here, and
 * every key is documented once, in conf/proxy.properties.
 *
 * <p>How each value's text is read (durations, sizes, addresses, templates) is {@link ConfigParser};
 * the keys that come in families (upstream.NAME.*, route.NAME.*) are {@link ConfigFamilies}.
 *
 * <p>A bad file never half-starts the proxy: {@link #load} checks every key and value and
 * throws {@link Invalid} with every problem it found, each naming the file, the key and
 * what is wrong (a typo and a bad value are fixed in one round, not two).
 */
record Config(
        List<InetSocketAddress> listen,
        boolean reusePort,
        List<Server> upstream,
        Duration connectTimeout,
        Duration readTimeout,
        Duration sendTimeout,
        Duration clientHeaderTimeout,
        Duration clientBodyTimeout,
        Duration keepaliveTimeout,
        Duration shutdownTimeout,
        int upstreamKeepalive,
        Duration upstreamKeepaliveTimeout,
        int upstreamKeepaliveRequests,
        int maxFails,
        int nextUpstreamTries,      // 0 = each server once
        Duration nextUpstreamTimeout, // 0 = no limit
        Duration failTimeout,
        Duration resolveInterval,   // 0 = names are resolved at start only
        String healthCheck,         // the path checked; "" = no active health checks
        Duration healthCheckInterval,
        long clientMaxBodySize, // 0 = unlimited
        int maxRequestLine,
        int maxHeaderSize,
        int maxHeaderFields,
        int maxConnections,
        long bufferMemory,      // bytes for all transfer buffers together (BufferPool)
        String accessLog,       // a path, "-" for stdout, or "off"
        String logFormat,       // the access log's template of $variables (LogFormat)
        String errorLog,        // a path or "-" for stderr
        Log.Level errorLogLevel, // the least severe level written
        RealIp setRealIpFrom,   // the proxies whose real_ip_header is believed
        String realIpHeader,
        Map<String, String> headers, // header name -> template; "" removes the header
        Map<String, String> addHeader, // add_header.NAME: added to every response
        TlsConfig tls,               // null: no listener says ssl
        Gzip.Settings gzip,     // null: gzip off
        InetSocketAddress statusListen, // the status listener (Status); null = off
        Map<String, Config> groups,  // upstream.NAME: each named group's settings (upstream() is the default's)
        Routes routes) {             // route.NAME: which group a request goes to

    /**
     * One upstream server, as in nginx's {@code server 127.0.0.1:5000 weight=2;}. One given by
     * host name has that {@code name}, and its address is the first the name resolved to at
     * start; {@link Resolver} looks it up again as it runs. One given by IP address has none.
     */
    record Server(InetSocketAddress address, int weight, String name) {
        /** A server given by IP address. */
        Server(InetSocketAddress address, int weight) {
            this(address, weight, null);
        }

        String hostPort() {
            return Config.hostPort(address);
        }
    }

    // Limits that are not settings. Each is a bound no honest peer comes near.
    /**
     * The most fields a head of this size can hold: each takes at least 4 bytes ("a:" CRLF).
     * max_header_fields defaults to what fits in max_header_size, so that the size alone
     * bounds a head, as in nginx (which takes 200 small fields where Apache's
     * LimitRequestFields stops at 100).
     */
    static int fieldsThatFit(int headSize) {
        return Math.max(1, headSize / 4);
    }
    /** An upstream response head (status line and fields); more is 502. */
    static final int MAX_RESPONSE_HEAD = 64 * 1024;
    /** A chunk-size line with its extensions (RFC 9112 7.1.1); longer is 400. */
    static final int MAX_CHUNK_LINE = 4 * 1024;
    /** Interim (1xx) responses before the final one; more is 502. */
    static final int MAX_INTERIM_RESPONSES = 10;
    /** The trailer fields after a chunked body, which are checked and dropped; more is 400. */
    static final int MAX_TRAILER_SECTION = 16 * 1024;
    /**
     * How long a closing connection keeps reading (and discarding) what the client still
     * sends, after our last response. Closing with unread input makes the kernel send RST,
     * which can destroy that response before the client reads it (nginx: lingering_close).
     */
    static final Duration LINGERING_TIME = Duration.ofSeconds(2);
    /** A method name longer than any registered one is 501 (RFC 9110 9.1). */
    static final int MAX_METHOD_LENGTH = 24;

    /** The defaults: the tutorial's nginx setup in front of Flask on 127.0.0.1:5000. */
    static final Map<String, String> DEFAULTS = defaults();

    private static Map<String, String> defaults() {
        Map<String, String> d = new LinkedHashMap<>();
        d.put("listen", "0.0.0.0:8080");
        d.put("reuse_port", "off");
        d.put("upstream", "127.0.0.1:5000");
        d.put("connect_timeout", "5s");
        d.put("read_timeout", "90s");
        d.put("send_timeout", "60s");
        d.put("client_header_timeout", "60s");
        d.put("client_body_timeout", "60s");
        d.put("keepalive_timeout", "65s");
        d.put("shutdown_timeout", "10s");
        d.put("upstream_keepalive", "32");
        d.put("upstream_keepalive_timeout", "60s");
        d.put("upstream_keepalive_requests", "1000");
        d.put("max_fails", "1");
        d.put("next_upstream_tries", "0");
        d.put("next_upstream_timeout", "0");
        d.put("fail_timeout", "10s");
        d.put("resolve_interval", "30s");
        d.put("health_check", "");
        d.put("health_check_interval", "5s");
        d.put("client_max_body_size", "1m");
        d.put("max_request_line", "8k");
        d.put("max_header_size", "16k");
        d.put("max_header_fields", "auto");
        d.put("max_connections", "auto");
        d.put("buffer_memory", "auto");
        d.put("access_log", "-");
        // nginx's predefined "combined" format.
        d.put("log_format", "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "
                + "\"$http_referer\" \"$http_user_agent\"");
        d.put("error_log", "-"); // and the level notice
        d.put("set_real_ip_from", "");
        d.put("real_ip_header", "X-Forwarded-For");
        d.put("gzip", "off");
        d.put("gzip_types", Gzip.DEFAULT_TYPES);
        d.put("gzip_min_length", "20");
        d.put("gzip_comp_level", "1");
        d.put("gzip_vary", "on");
        d.put("status_listen", "");
        d.put("header.Host", "$http_host");
        d.put("header.X-Real-IP", "$remote_addr");
        d.put("header.X-Forwarded-For", "$proxy_add_x_forwarded_for");
        d.put("header.X-Forwarded-Proto", "$scheme");
        TlsConfig.defaults(d);
        return d;
    }

    /** The variables a header template may use (nginx's names). */
    static final List<String> VARIABLES = List.of(
            "$remote_addr", "$remote_port", "$scheme", "$host", "$http_host", "$proxy_add_x_forwarded_for",
            "$request_id", "$forwarded");

    /** The variables route.NAME.return may use (nginx's names). */
    static final List<String> RETURN_VARIABLES = List.of("$request_uri", "$uri", "$host", "$scheme");

    /** The variables log_format may use (nginx's names). */
    static final List<String> LOG_VARIABLES = List.of(
            "$remote_addr", "$remote_user", "$time_local", "$time_iso8601", "$request", "$status",
            "$body_bytes_sent", "$http_referer", "$http_user_agent", "$request_time", "$upstream_addr",
            "$upstream_status", "$upstream_response_time", "$request_id", "$host", "$gzip_ratio", "$upstream_name", "$route",
            "$scheme", "$ssl_protocol", "$ssl_cipher", "$ssl_server_name");

    /** The keys a named group may set for itself (upstream.NAME.KEY); the global ones are the defaults. */
    static final List<String> GROUP_KEYS = List.of(
            "connect_timeout", "upstream_keepalive", "upstream_keepalive_timeout", "upstream_keepalive_requests",
            "max_fails", "fail_timeout", "next_upstream_tries", "next_upstream_timeout", "resolve_interval",
            "health_check", "health_check_interval");

    /** The keys a route may set for itself (route.NAME.KEY), besides header.X. */
    static final List<String> ROUTE_KEYS = List.of("strip_prefix", "read_timeout", "client_max_body_size", "return");

    /** The name the unnamed group has in logs and status pages. */
    static final String DEFAULT_GROUP = "default";

    /**
     * A configuration that can't be used, with every problem found: each one line naming the
     * file, the key and what is wrong. The message is those lines, joined by newlines.
     */
    static final class Invalid extends Exception {
        private final List<String> problems;
        private final List<String> warnings;

        Invalid(String problem) {
            this(List.of(problem));
        }

        Invalid(List<String> problems) {
            this(problems, List.of());
        }

        Invalid(List<String> problems, List<String> warnings) {
            super(String.join("\n", problems));
            this.problems = List.copyOf(problems);
            this.warnings = List.copyOf(warnings);
        }

        List<String> problems() {
            return problems;
        }

        /** What a start would also have warned of (TLS's), for --check to print with the problems. */
        List<String> warnings() {
            return warnings;
        }
    }

    static Config load(Path file) throws Invalid {
        // A key given twice is a mistake (Properties would keep the last silently): say so.
        List<String> repeated = new ArrayList<>();
        Properties p = new Properties() {
            @Override
            public synchronized Object put(Object key, Object value) {
                Object before = super.put(key, value);
                if (before != null) {
                    repeated.add(file + ": key '" + key + "' is given twice ('" + String.valueOf(before).strip()
                            + "' and '" + String.valueOf(value).strip() + "')");
                }
                return before;
            }
        };
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            p.load(r);
        } catch (NoSuchFileException e) {
            throw new Invalid(file + ": cannot read: no such file");
        } catch (AccessDeniedException e) {
            throw new Invalid(file + ": cannot read: permission denied");
        } catch (IOException | IllegalArgumentException e) {
            throw new Invalid(file + ": cannot read: " + e.getMessage());
        }
        Map<String, String> values = new TreeMap<>();
        p.stringPropertyNames().forEach(k -> values.put(k, p.getProperty(k).strip()));
        return from(values, file.toString(), repeated);
    }

    /**
     * Builds a Config from key/value pairs over the defaults; {@code source} names them in
     * errors. Every key is checked before it throws: the unknown keys first (in the order
     * given), then each bad value (in the order of the record's components).
     */
    static Config from(Map<String, String> given, String source) throws Invalid {
        return from(given, source, List.of());
    }

    /** The key among {@code keys} that is {@code key} spelt in other letter cases (a header's), or null. */
    static String otherSpelling(String key, Collection<String> keys) {
        return keys.stream().filter(k -> k.equalsIgnoreCase(key) && !k.equals(key)).findFirst().orElse(null);
    }

    /** As above, with the problems already found in reading the file (a key given twice). */
    static Config from(Map<String, String> given, String source, List<String> earlier) throws Invalid {
        List<String> problems = new ArrayList<>(earlier);
        Map<String, String> v = new LinkedHashMap<>(DEFAULTS);
        Map<String, String> groupKeys = new TreeMap<>(), routeKeys = new TreeMap<>();
        for (var e : given.entrySet()) {
            String key = e.getKey();
            if (key.startsWith("upstream.")) {
                groupKeys.put(key, e.getValue());
            } else if (key.startsWith("route.")) {
                routeKeys.put(key, e.getValue());
            } else if (!DEFAULTS.containsKey(key) && !key.startsWith("header.") && !key.startsWith("add_header.")) {
                problems.add(source + ": unknown key '" + key + "'" + suggestion(key));
            } else if (key.startsWith("header.")) {
                // Header names are case-insensitive: header.x-forwarded-for replaces the
                // default header.X-Forwarded-For, and two spellings of one name are a mistake.
                String same = otherSpelling(key, v.keySet());
                if (same != null && given.containsKey(same)) {
                    problems.add(source + ": keys '" + same + "' and '" + key + "' name the same header");
                } else if (same != null) {
                    v.remove(same);
                }
                v.put(key, e.getValue());
            } else {
                v.put(key, e.getValue());
            }
        }
        // With routes, the unnamed upstream is the default group only if it is given.
        boolean noDefault = !routeKeys.isEmpty() && !given.containsKey("upstream");
        Config global = build(new ConfigParser(source, v, problems, k -> k), true, noDefault, Map.of(), null);
        Map<String, Config> groups = ConfigFamilies.groups(groupKeys, v, source, problems);
        Routes routes = ConfigFamilies.routes(routeKeys, global, groups, noDefault, source, problems);
        java.util.Set<InetSocketAddress> seen = new java.util.HashSet<>();
        for (InetSocketAddress a : global.listen()) {
            if (a.getPort() != 0 && !seen.add(a)) {
                problems.add(source + ": key 'listen': " + hostPort(a) + " is listed twice");
            }
        }
        if (!problems.isEmpty()) {
            throw new Invalid(List.copyOf(new java.util.LinkedHashSet<>(problems)), global.warnings());
        }
        return global.with(global.headers(), global.readTimeout(), global.clientMaxBodySize(), groups, routes);
    }

    /** Every value read by its rule; {@code routes} null: none yet (from() adds them). */
    static Config build(ConfigParser in, boolean global, boolean noDefault, Map<String, Config> groups, Routes routes) {
        int maxHeaderSize = (int) in.size("max_header_size", 256, 1 << 20); // max_header_fields follows it
        return new Config(
                in.addresses("listen"),
                in.flag("reuse_port"),
                noDefault ? List.of() : in.servers("upstream"),
                in.duration("connect_timeout"),
                in.duration("read_timeout"),
                in.duration("send_timeout"),
                in.duration("client_header_timeout"),
                in.duration("client_body_timeout"),
                in.duration("keepalive_timeout"),
                in.duration("shutdown_timeout"),
                in.count("upstream_keepalive", 0),
                in.duration("upstream_keepalive_timeout"),
                in.count("upstream_keepalive_requests", 1),
                in.count("max_fails", 0),
                in.count("next_upstream_tries", 0),
                in.durationOrZero("next_upstream_timeout"),
                in.duration("fail_timeout"),
                in.durationOrZero("resolve_interval"),
                in.healthCheck("health_check"),
                in.duration("health_check_interval"),
                in.size("client_max_body_size", 0, Long.MAX_VALUE),
                (int) in.size("max_request_line", 64, 1 << 20),
                maxHeaderSize,
                in.countOrAuto("max_header_fields", 1, fieldsThatFit(maxHeaderSize)),
                in.countOrAuto("max_connections", 1, Connections.defaultMax(Runtime.getRuntime().maxMemory())),
                in.bufferMemory("buffer_memory"),
                in.log("access_log"),
                in.logFormat("log_format"),
                in.log("error_log"),
                in.logLevel("error_log"),
                in.realIp("set_real_ip_from"),
                in.headerName("real_ip_header"),
                in.headers(),
                in.addHeaders(),
                global ? TlsConfig.read(in.values(), in.source(), in.problems()) : null, // a group has no listener
                in.gzip(),
                in.optionalAddress("status_listen"),
                groups,
                routes);
    }

    /**
     * What a start logs at warn, and --check prints: TLS's (ssl_protocols' TLS 1.0/1.1, an
     * expired certificate), a max_connections over what this JVM's heap holds, and a JVM
     * that may not fit a small container (C2 with a small heap).
     */
    List<String> warnings() {
        List<String> all = new ArrayList<>(tls == null ? List.of() : tls.warnings());
        long maxHeap = Runtime.getRuntime().maxMemory();
        String connections = Connections.overHeap(maxConnections, maxHeap);
        if (connections != null) all.add(connections);
        String jvm = Connections.smallJvm(maxHeap, System.getProperty("java.vm.info"));
        if (jvm != null) all.add(jvm);
        return all;
    }

    /** A copy with a route's overrides, or with the groups and routes. */
    Config with(Map<String, String> headers, Duration readTimeout, long clientMaxBodySize,
                Map<String, Config> groups, Routes routes) {
        return new Config(listen, reusePort, upstream, connectTimeout, readTimeout, sendTimeout, clientHeaderTimeout,
                clientBodyTimeout, keepaliveTimeout, shutdownTimeout, upstreamKeepalive, upstreamKeepaliveTimeout,
                upstreamKeepaliveRequests, maxFails, nextUpstreamTries, nextUpstreamTimeout, failTimeout, resolveInterval,
                healthCheck, healthCheckInterval, clientMaxBodySize, maxRequestLine, maxHeaderSize, maxHeaderFields,
                maxConnections, bufferMemory, accessLog, logFormat, errorLog, errorLogLevel, setRealIpFrom, realIpHeader,
                headers, addHeader, tls, gzip, statusListen, groups, routes);
    }

    /** route.NAME.return's value: a status, then optionally a text or URL (ConfigParser.returnOf). */
    static final Pattern RETURN = Pattern.compile("([1-5][0-9][0-9])(?:\\s+(.*))?");

    /** ", did you mean 'x'?" for the known key closest to a misspelt one. */
    private static String suggestion(String key) {
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String known : DEFAULTS.keySet()) {
            int d = editDistance(key, known);
            if (d < bestDistance) {
                bestDistance = d;
                best = known;
            }
        }
        return bestDistance <= Math.max(2, key.length() / 3) ? " (did you mean '" + best + "'?)" : "";
    }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitute = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(substitute, Math.min(prev[j] + 1, cur[j - 1] + 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    static String hostPort(InetSocketAddress a) {
        String host = a.getHostString(); // the name as configured, or the address
        if (host.contains(":") && !a.isUnresolved()) host = Forwarding.ip(a); // "::", not "0:0:0:0:0:0:0:0"
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort();
    }
}
