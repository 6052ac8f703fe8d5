import java.io.IOException;
import java.io.Reader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The proxy's settings: one {@code .properties} file whose keys follow nginx's directive
 * names (proxy_read_timeout becomes read_timeout, and so on). Every default lives here, and
 * every key is documented once, in conf/proxy.properties.
 *
 * <p>How each value's text is read (durations, sizes, addresses, templates) is {@link ConfigParser}.
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
        d.put("max_connections", "10000");
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
        Properties p = new Properties();
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
        return from(values, file.toString());
    }

    /**
     * Builds a Config from key/value pairs over the defaults; {@code source} names them in
     * errors. Every key is checked before it throws: the unknown keys first (in the order
     * given), then each bad value (in the order of the record's components).
     */
    static Config from(Map<String, String> given, String source) throws Invalid {
        List<String> problems = new ArrayList<>();
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
                String same = v.keySet().stream().filter(k -> k.equalsIgnoreCase(key) && !k.equals(key)).findFirst().orElse(null);
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
        Map<String, Config> groups = groups(groupKeys, v, source, problems);
        Routes routes = routes(routeKeys, global, groups, noDefault, source, problems);
        if (!problems.isEmpty()) {
            throw new Invalid(List.copyOf(new java.util.LinkedHashSet<>(problems)), global.warnings());
        }
        return global.with(global.headers(), global.readTimeout(), global.clientMaxBodySize(), groups, routes);
    }

    /** Every value read by its rule; {@code routes} null: none yet (from() adds them). */
    private static Config build(ConfigParser in, boolean global, boolean noDefault, Map<String, Config> groups, Routes routes) {
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
                in.count("max_connections", 1),
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

    /** What a start logs at warn, and --check prints: TLS's (ssl_protocols' TLS 1.0/1.1, an expired certificate). */
    List<String> warnings() {
        return tls == null ? List.of() : tls.warnings();
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

    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_-]+");

    /** One key of a family, FAMILY.NAME or FAMILY.NAME.KEY: its NAME, and its KEY ("" for none). */
    private record Member(String name, String key) {
        static Member of(String fullKey, String family) {
            String rest = fullKey.substring(family.length() + 1);
            int dot = rest.indexOf('.');
            return dot < 0 ? new Member(rest, "") : new Member(rest.substring(0, dot), rest.substring(dot + 1));
        }

        boolean named() {
            return NAME.matcher(name).matches();
        }
    }

    /**
     * upstream.NAME = servers, and upstream.NAME.KEY for the GROUP_KEYS: each group's settings
     * are the global ones with its own keys over them (read by the same rules, named by their keys).
     */
    private static Map<String, Config> groups(Map<String, String> keys, Map<String, String> global, String source,
                                              List<String> problems) {
        Map<String, Map<String, String>> own = new TreeMap<>();
        for (var e : keys.entrySet()) {
            Member m = Member.of(e.getKey(), "upstream");
            if (!m.named() || !m.key().isEmpty() && !GROUP_KEYS.contains(m.key())) {
                problems.add(source + ": unknown key '" + e.getKey() + "'"
                        + (m.named() ? " (a group may set: " + String.join(", ", GROUP_KEYS) + ")" : ""));
            } else if (m.name().equals(DEFAULT_GROUP)) {
                problems.add(source + ": key '" + e.getKey() + "': the default group is set by 'upstream' and the global keys");
            } else {
                own.computeIfAbsent(m.name(), n -> new LinkedHashMap<>()).put(m.key().isEmpty() ? "upstream" : m.key(), e.getValue());
            }
        }
        Map<String, Config> groups = new LinkedHashMap<>();
        own.forEach((name, values) -> {
            if (!values.containsKey("upstream")) {
                problems.add(source + ": keys 'upstream." + name + ".*' without 'upstream." + name + "' (its servers)");
                return;
            }
            Map<String, String> v = new LinkedHashMap<>(global);
            v.putAll(values);
            String prefix = "upstream." + name;
            Function<String, String> keyName = k -> !values.containsKey(k) ? k : k.equals("upstream") ? prefix : prefix + "." + k;
            groups.put(name, build(new ConfigParser(source, v, problems, keyName), false, false, Map.of(), null));
        });
        return Collections.unmodifiableMap(groups);
    }

    private static final Pattern ROUTE = Pattern.compile("([^/\\s]*)(/\\S*)?(?:\\s*->\\s*(\\S+))?");
    private static final Pattern HOST_PATTERN = Pattern.compile("(?:\\*\\.|\\.)?[a-z0-9-]+(?:\\.[a-z0-9-]+)*");
    static final Pattern RETURN = Pattern.compile("([1-5][0-9][0-9])(?:\\s+(.*))?");
    private static final Pattern PREFIX = Pattern.compile("/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*");

    /**
     * route.NAME = [HOST][PATH_PREFIX] -> GROUP, and route.NAME.KEY for the ROUTE_KEYS and
     * header.X; then the whole table is checked: no two routes for the same host and prefix,
     * no route to a group that does not exist.
     */
    private static Routes routes(Map<String, String> keys, Config global, Map<String, Config> groups, boolean noDefault,
                                 String source, List<String> problems) {
        Map<String, Map<String, String>> own = new TreeMap<>();
        for (var e : keys.entrySet()) {
            Member m = Member.of(e.getKey(), "route");
            if (!m.named() || !m.key().isEmpty() && !ROUTE_KEYS.contains(m.key()) && !m.key().startsWith("header.")) {
                problems.add(source + ": unknown key '" + e.getKey() + "'"
                        + (m.named() ? " (a route may set: " + String.join(", ", ROUTE_KEYS) + ", header.NAME)" : ""));
            } else {
                own.computeIfAbsent(m.name(), n -> new LinkedHashMap<>()).put(m.key(), e.getValue());
            }
        }
        List<Routes.Route> routes = new ArrayList<>();
        own.forEach((name, values) -> {
            Routes.Route r = route(name, values, global, groups, source, problems);
            if (r != null) routes.add(r);
        });
        problems.addAll(Routes.conflicts(routes).stream().map(p -> source + ": " + p).toList());
        Routes.Route fallback = noDefault ? null
                : new Routes.Route(null, null, "/", DEFAULT_GROUP, false, null, global);
        return new Routes(routes, fallback);
    }

    /** One route, or null (its problems noted). */
    private static Routes.Route route(String name, Map<String, String> values, Config global, Map<String, Config> groups,
                                      String source, List<String> problems) {
        String key = "route." + name;
        String spec = values.get("");
        if (spec == null) {
            problems.add(source + ": keys '" + key + ".*' without '" + key + "' (its [HOST][PATH_PREFIX] -> GROUP)");
            return null;
        }
        Matcher m = ROUTE.matcher(spec);
        String host = m.matches() ? m.group(1).toLowerCase(java.util.Locale.ROOT) : null;
        if (host != null && host.endsWith(".") && host.length() > 1) host = host.substring(0, host.length() - 1);
        String prefix = m.matches() && m.group(2) != null ? m.group(2) : "/";
        if (host == null || host.isEmpty() && m.group(2) == null || !host.isEmpty() && !HOST_PATTERN.matcher(host).matches()
                || !PREFIX.matcher(prefix).matches()) {
            problems.add(source + ": key '" + key + "': expected [HOST][PATH_PREFIX] -> GROUP, such as "
                    + "'api.example.com/ -> api', '/admin/ -> admin' or '*.example.com/ -> web' (value: '" + spec + "')");
            return null;
        }
        String group = m.group(3);
        Map<String, String> sub = new LinkedHashMap<>(DEFAULTS);
        sub.keySet().removeIf(k -> k.startsWith("header.")); // in.headers() below: the route's own only
        values.forEach((k, v) -> {
            if (!k.isEmpty()) sub.put(k, v);
        });
        List<String> own = new ArrayList<>();
        ConfigParser in = new ConfigParser(source, sub, own, k -> key + "." + k);
        Routes.Return answer = values.containsKey("return") ? in.read("return", ConfigParser::returnOf) : null;
        if (group == null && answer == null) {
            own.add(source + ": key '" + key + "': no '-> GROUP' and no '" + key + ".return'");
        } else if (answer == null && !group.equals(DEFAULT_GROUP) && !groups.containsKey(group)) {
            own.add(source + ": key '" + key + "': no upstream group '" + group + "' (no key 'upstream." + group + "')");
        } else if (answer == null && group.equals(DEFAULT_GROUP) && global.upstream().isEmpty()) {
            own.add(source + ": key '" + key + "': no default group (no key 'upstream')");
        }
        boolean strip = values.containsKey("strip_prefix") && in.flag("strip_prefix");
        Duration readTimeout = values.containsKey("read_timeout") ? in.duration("read_timeout") : global.readTimeout();
        long maxBody = values.containsKey("client_max_body_size")
                ? in.size("client_max_body_size", 0, Long.MAX_VALUE) : global.clientMaxBodySize();
        // header.X overrides the global header of that name only (names are case-insensitive).
        Map<String, String> headers = new LinkedHashMap<>(global.headers());
        Map<String, String> mine = in.headers();
        mine.keySet().forEach(n -> headers.keySet().removeIf(h -> h.equalsIgnoreCase(n)));
        headers.putAll(mine);
        problems.addAll(own);
        if (!own.isEmpty()) return null;
        Config settings = global.with(Collections.unmodifiableMap(headers), readTimeout, maxBody, Map.of(), null);
        return new Routes.Route(name, host.isEmpty() ? null : host, prefix, group, strip, answer, settings);
    }

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
