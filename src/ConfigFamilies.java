import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The keys that come in families, each member named by its middle part: upstream.NAME
 * (a group of servers) with upstream.NAME.KEY (the group's own settings, over the global
 * ones), and route.NAME (which requests go to which group) with route.NAME.KEY (the
 * route's own settings). {@link Config#from} hands each family's keys here and gets back
 * the groups' settings and the route table, every problem noted as the other keys' are.
 */
final class ConfigFamilies {
    private ConfigFamilies() {}

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
     * upstream.NAME = servers, and upstream.NAME.KEY for the Config.GROUP_KEYS: each group's settings
     * are the global ones with its own keys over them (read by the same rules, named by their keys).
     */
    static Map<String, Config> groups(Map<String, String> keys, Map<String, String> global, String source,
                                              List<String> problems) {
        Map<String, Map<String, String>> own = new TreeMap<>();
        for (var e : keys.entrySet()) {
            Member m = Member.of(e.getKey(), "upstream");
            if (!m.named() || !m.key().isEmpty() && !Config.GROUP_KEYS.contains(m.key())) {
                problems.add(source + ": unknown key '" + e.getKey() + "'"
                        + (m.named() ? " (a group may set: " + String.join(", ", Config.GROUP_KEYS) + ")" : ""));
            } else if (m.name().equals(Config.DEFAULT_GROUP)) {
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
            groups.put(name, Config.build(new ConfigParser(source, v, problems, keyName), false, false, Map.of(), null));
        });
        return Collections.unmodifiableMap(groups);
    }

    private static final Pattern ROUTE = Pattern.compile("([^/\\s]*)(/\\S*)?(?:\\s*->\\s*(\\S+))?");
    private static final Pattern HOST_PATTERN = Pattern.compile("(?:\\*\\.|\\.)?[a-z0-9-]+(?:\\.[a-z0-9-]+)*");
    private static final Pattern PREFIX = Pattern.compile("/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*");

    /**
     * route.NAME = [HOST][PATH_PREFIX] -> GROUP, and route.NAME.KEY for the Config.ROUTE_KEYS and
     * header.X; then the whole table is checked: no two routes for the same host and prefix,
     * no route to a group that does not exist.
     */
    static Routes routes(Map<String, String> keys, Config global, Map<String, Config> groups, boolean noDefault,
                                 String source, List<String> problems) {
        Map<String, Map<String, String>> own = new TreeMap<>();
        for (var e : keys.entrySet()) {
            Member m = Member.of(e.getKey(), "route");
            if (!m.named() || !m.key().isEmpty() && !Config.ROUTE_KEYS.contains(m.key()) && !m.key().startsWith("header.")) {
                problems.add(source + ": unknown key '" + e.getKey() + "'"
                        + (m.named() ? " (a route may set: " + String.join(", ", Config.ROUTE_KEYS) + ", header.NAME)" : ""));
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
                : new Routes.Route(null, null, "/", Config.DEFAULT_GROUP, false, null, global);
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
        String host = m.matches() ? m.group(1).toLowerCase(Locale.ROOT) : null;
        if (host != null && host.endsWith(".") && host.length() > 1) host = host.substring(0, host.length() - 1);
        String prefix = m.matches() && m.group(2) != null ? m.group(2) : "/";
        if (host == null || host.isEmpty() && m.group(2) == null || !host.isEmpty() && !HOST_PATTERN.matcher(host).matches()
                || !PREFIX.matcher(prefix).matches()) {
            problems.add(source + ": key '" + key + "': expected [HOST][PATH_PREFIX] -> GROUP, such as "
                    + "'api.example.com/ -> api', '/admin/ -> admin' or '*.example.com/ -> web' (value: '" + spec + "')");
            return null;
        }
        // Compared as it is written, with requests as they come, each also read as the app
        // reads it (Routes.asRead): a prefix must be in that form already, or none would match.
        String asRead = HttpParser.isTargetText(prefix) ? Routes.asRead(prefix) : null; // null: an escape is bad
        if (!prefix.equals(asRead)) {
            problems.add(source + ": key '" + key + "': write the path prefix as an app reads it, with no '%'-escape of"
                    + " an ASCII character and no '//'" + (asRead != null ? " ('" + asRead + "')" : "")
                    + " (value: '" + spec + "')");
            return null;
        }
        String group = m.group(3);
        Map<String, String> sub = new LinkedHashMap<>(Config.DEFAULTS);
        sub.keySet().removeIf(k -> k.startsWith("header.")); // in.headers() below: the route's own only
        values.forEach((k, v) -> {
            if (!k.isEmpty()) sub.put(k, v);
        });
        List<String> own = new ArrayList<>();
        List<String> headerKeys = new ArrayList<>(); // as the global ones: two spellings of one name are a mistake
        for (String k : values.keySet()) {
            if (!k.startsWith("header.")) continue;
            String same = Config.otherSpelling(k, headerKeys);
            if (same != null) {
                own.add(source + ": keys '" + key + "." + same + "' and '" + key + "." + k + "' name the same header");
            }
            headerKeys.add(k);
        }
        ConfigParser in = new ConfigParser(source, sub, own, k -> key + "." + k);
        Routes.Return answer = values.containsKey("return") ? in.read("return", ConfigParser::returnOf) : null;
        if (group == null && answer == null) {
            own.add(source + ": key '" + key + "': no '-> GROUP' and no '" + key + ".return'");
        } else if (answer == null && !group.equals(Config.DEFAULT_GROUP) && !groups.containsKey(group)) {
            own.add(source + ": key '" + key + "': no upstream group '" + group + "' (no key 'upstream." + group + "')");
        } else if (answer == null && group.equals(Config.DEFAULT_GROUP) && global.upstream().isEmpty()) {
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
}
