import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Parses message heads (RFC 9112 sections 2-5) into immutable values, strictly.
 *
 * <p>A proxy sits where two parsers meet: wherever it reads a message differently from the
 * server behind it, a request can be smuggled past it. So every rule here rejects rather
 * than guesses, and the framing of a body is decided once, here ({@link #requestBody},
 * {@link #responseBody}), and regenerated on the way out. Line endings and size limits
 * were already enforced by {@link HeadReader#readHead}; this class sees one complete head.
 */
final class HttpParser {
    /** A request head. {@code target} is in origin-form (or "*"); {@code host} is the Host value. */
    record Request(String method, String target, boolean http11, Headers headers, String host) {}

    /** A response head. */
    record Response(boolean http11, int status, String reason, Headers headers) {}

    private HttpParser() {}

    /** Transfer codings that exist (RFC 9110 8.4.1) but that this proxy does not decode. */
    private static final Set<String> KNOWN_CODINGS = Set.of("gzip", "x-gzip", "deflate", "compress", "x-compress");

    // ---- requests ---------------------------------------------------------------------

    /** A request head with at most as many fields as fit in it (see {@link Config#fieldsThatFit}). */
    static Request parseRequest(byte[] head) throws HttpError {
        return parseRequest(head, Config.fieldsThatFit(head.length));
    }

    /** A request head of at most {@code maxFields} fields (max_header_fields; more is 431). */
    static Request parseRequest(byte[] head, int maxFields) throws HttpError {
        String text = new String(head, StandardCharsets.ISO_8859_1);
        int eol = text.indexOf("\r\n");
        String line = text.substring(0, eol);

        // request-line = method SP request-target SP HTTP-version (RFC 9112 3), single spaces only.
        int sp1 = line.indexOf(' ');
        int sp2 = line.indexOf(' ', sp1 + 1);
        if (sp1 <= 0 || sp2 < 0 || line.indexOf(' ', sp2 + 1) >= 0) throw bad("malformed request line");
        String method = line.substring(0, sp1);
        String target = line.substring(sp1 + 1, sp2);
        String version = line.substring(sp2 + 1);
        if (!isToken(method)) throw bad("invalid method");
        if (target.isEmpty() || !isTargetText(target)) throw bad("invalid request target");
        if (!isVersion(version)) throw bad("invalid HTTP version");

        Headers headers = parseFields(text, eol + 2, 400, maxFields);
        if (headers.all("Host").size() > 1) throw bad("more than one Host"); // RFC 9112 3.2

        // The four forms of request-target (RFC 9112 3.2) and the methods each belongs to.
        String authority = null;
        if (method.equals("CONNECT")) {
            if (target.startsWith("/") || target.equals("*")) throw bad("CONNECT needs authority-form");
            throw new HttpError(501, "CONNECT is not supported by a reverse proxy", true);
        } else if (target.equals("*")) {
            if (!method.equals("OPTIONS")) throw bad("asterisk-form is only for OPTIONS");
        } else if (!target.startsWith("/")) {
            // absolute-form: the authority in the target replaces Host (RFC 9112 3.2.2), so
            // that what we forward as Host is what we read as the target.
            int schemeEnd = target.indexOf("://");
            String scheme = schemeEnd < 0 ? "" : target.substring(0, schemeEnd);
            if (!scheme.equalsIgnoreCase("http") && !scheme.equalsIgnoreCase("https")) {
                throw bad("request target must be origin-form or absolute-form");
            }
            int pathStart = indexOfAny(target, "/?", schemeEnd + 3);
            authority = target.substring(schemeEnd + 3, pathStart);
            String rest = target.substring(pathStart);
            target = rest.startsWith("/") ? rest : "/" + rest;
        }

        if (version.charAt(5) != '1') throw new HttpError(505, "only HTTP/1.x is supported", true);
        boolean http11 = version.charAt(7) != '0';
        if (method.length() > Config.MAX_METHOD_LENGTH) throw new HttpError(501, "unknown method", true);
        if (method.equals("TRACE")) throw new HttpError(405, "TRACE is not allowed", true); // as nginx: no XST

        String host = authority != null ? authority : headers.first("Host");
        if (host == null) {
            if (http11) throw bad("HTTP/1.1 request without Host"); // RFC 9112 3.2: MUST 400
        } else {
            if (!isHost(host)) throw bad("invalid Host");
            if (authority != null) headers.set("Host", authority);
        }
        return new Request(method, target, http11, headers, host);
    }

    // ---- responses --------------------------------------------------------------------

    static Response parseResponse(byte[] head) throws HttpError {
        String text = new String(head, StandardCharsets.ISO_8859_1);
        int eol = text.indexOf("\r\n");
        String line = text.substring(0, eol);
        // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4).
        // The SP before an empty reason is often left out; that is accepted.
        if (line.length() < 12 || !isVersion(line.substring(0, 8)) || line.charAt(5) != '1'
                || line.charAt(8) != ' ' || (line.length() > 12 && line.charAt(12) != ' ')) {
            throw new HttpError(502, "invalid status line from upstream", true);
        }
        String code = line.substring(9, 12);
        if (!isDigits(code) || code.charAt(0) < '1' || code.charAt(0) > '5') {
            throw new HttpError(502, "invalid status code from upstream", true);
        }
        String reason = line.length() > 13 ? line.substring(13) : "";
        if (!isFieldValue(reason)) throw new HttpError(502, "invalid reason phrase from upstream", true);
        Headers headers = parseFields(text, eol + 2, 502, Config.fieldsThatFit(Config.MAX_RESPONSE_HEAD));
        return new Response(line.charAt(7) != '0', Integer.parseInt(code), reason, headers);
    }

    // ---- fields -----------------------------------------------------------------------

    /**
     * field-line = field-name ":" OWS field-value OWS (RFC 9112 5). No whitespace before the
     * colon (5.1: MUST reject), no obs-fold (5.2), no control bytes in values (RFC 9110 5.5).
     */
    private static Headers parseFields(String text, int from, int status, int maxFields) throws HttpError {
        Headers headers = new Headers();
        int count = 0;
        for (int start = from; ; ) {
            int end = text.indexOf("\r\n", start);
            if (end == start) return headers; // the empty line that ends the head
            String line = text.substring(start, end);
            start = end + 2;
            if (++count > maxFields) throw new HttpError(status == 400 ? 431 : 502, "too many header fields", true);
            char c0 = line.charAt(0);
            if (c0 == ' ' || c0 == '\t') throw new HttpError(status, "obs-fold or whitespace before a field name", true);
            int colon = line.indexOf(':');
            if (colon <= 0) throw new HttpError(status, "field line without a name and colon", true);
            String name = line.substring(0, colon);
            if (!isToken(name)) throw new HttpError(status, "invalid field name", true);
            String value = stripOws(line.substring(colon + 1));
            if (!isFieldValue(value)) throw new HttpError(status, "invalid byte in field value", true);
            // nginx drops names with "_" by default: a CGI/WSGI app maps "-" and "_" to the
            // same variable, so X_Real_IP could forge X-Real-IP behind our back.
            if (status == 400 && name.indexOf('_') >= 0) continue;
            headers.add(name, value);
        }
    }

    /** Parses trailer fields after the last chunk (RFC 9112 7.1.2): same syntax as headers. */
    static void checkTrailerLine(String line, int status) throws HttpError {
        parseFields(line + "\r\n\r\n", 0, status, 1);
    }

    // ---- framing ----------------------------------------------------------------------

    /** How the body of this request is delimited (RFC 9112 6.3, rules 3-7 for requests). */
    static Body requestBody(Request r) throws HttpError {
        Headers h = r.headers();
        List<String> te = h.all("Transfer-Encoding");
        List<String> cl = h.all("Content-Length");
        if (!te.isEmpty()) {
            // RFC 9112 6.1: a 1.0 recipient can't know chunked; 6.3: TE with CL may be an
            // attempt at smuggling and the connection must close after the response.
            if (!r.http11()) throw bad("Transfer-Encoding in an HTTP/1.0 request");
            if (!cl.isEmpty()) throw bad("both Transfer-Encoding and Content-Length");
            if (te.size() > 1) throw bad("more than one Transfer-Encoding field");
            List<String> codings = new ArrayList<>();
            for (String element : te.get(0).split(",", -1)) {
                String coding = stripOws(element).toLowerCase();
                if (!isToken(coding)) throw bad("invalid transfer coding");
                if (!coding.equals("chunked") && !KNOWN_CODINGS.contains(coding)) {
                    throw new HttpError(501, "unknown transfer coding", true);
                }
                codings.add(coding);
            }
            int chunked = codings.indexOf("chunked");
            if (chunked >= 0 && (chunked != codings.size() - 1 || codings.lastIndexOf("chunked") != chunked)) {
                throw bad("chunked must be the last transfer coding, applied once"); // RFC 9112 6.1
            }
            // gzip alone, or gzip then chunked: real codings that this proxy does not decode.
            if (codings.size() > 1 || chunked < 0) throw new HttpError(501, "transfer codings other than chunked", true);
            return Body.CHUNKED;
        }
        if (!cl.isEmpty()) return Body.ofLength(contentLength(cl, 400));
        return Body.EMPTY; // RFC 9112 6.3 rule 7: a request without either has no body
    }

    /** How the body of this response is delimited (RFC 9112 6.3, rules 1-3, 5-8). */
    static Body responseBody(Response r, String requestMethod) throws HttpError {
        int s = r.status();
        if (requestMethod.equals("HEAD") || s < 200 || s == 204 || s == 304) return Body.EMPTY;
        Headers h = r.headers();
        List<String> te = h.all("Transfer-Encoding");
        List<String> cl = h.all("Content-Length");
        if (!te.isEmpty()) {
            if (!r.http11()) throw new HttpError(502, "Transfer-Encoding in an HTTP/1.0 response", true);
            if (!cl.isEmpty()) throw new HttpError(502, "both Transfer-Encoding and Content-Length from upstream", true);
            if (te.size() > 1 || !stripOws(te.get(0)).equalsIgnoreCase("chunked")) {
                throw new HttpError(502, "upstream transfer coding other than a single chunked", true);
            }
            return Body.CHUNKED;
        }
        if (!cl.isEmpty()) return Body.ofLength(contentLength(cl, 502));
        return Body.UNTIL_CLOSE;
    }

    /** Content-Length = 1*DIGIT (RFC 9110 8.6); one field, one value, no sign, no list. */
    static long contentLength(List<String> values, int status) throws HttpError {
        String v = values.get(0);
        if (values.size() > 1 || v.length() > 18 || !isDigits(v)) {
            throw new HttpError(status, "invalid Content-Length", true);
        }
        return Long.parseLong(v);
    }

    // ---- character classes ------------------------------------------------------------

    /** token = 1*tchar (RFC 9110 5.6.2). */
    static boolean isToken(String s) {
        if (s.isEmpty()) return false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
                    || "!#$%&'*+-.^_`|~".indexOf(c) >= 0;
            if (!ok) return false;
        }
        return true;
    }

    /** field-value: VCHAR, obs-text, SP and HTAB; never CR, LF, NUL or other controls. */
    static boolean isFieldValue(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 && c != '\t' || c == 0x7f) return false;
        }
        return true;
    }

    /**
     * The characters of a URI (RFC 3986 2): unreserved, sub-delims, ":@/?" and "%" HEXDIG
     * HEXDIG, plus "[" "]" for IP literals. Everything else (SP, controls, bytes >= 0x80,
     * '#', '<', '>', '"', '\', '^', '`', '{', '|', '}') makes the target invalid: 400
     * (RFC 9112 3.2). Percent-escapes are checked, never decoded.
     */
    static boolean isTargetText(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '%') {
                if (i + 2 >= s.length() || !isHex(s.charAt(i + 1)) || !isHex(s.charAt(i + 2))) return false;
                i += 2;
            } else if (!(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
                    || "-._~!$&'()*+,;=:@/?[]".indexOf(c) >= 0)) {
                return false;
            }
        }
        return true;
    }

    /** HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 2.3). */
    private static boolean isVersion(String v) {
        return v.length() == 8 && v.startsWith("HTTP/") && Character.isDigit(v.charAt(5))
                && v.charAt(6) == '.' && Character.isDigit(v.charAt(7));
    }

    /**
     * Host = uri-host [ ":" port ] (RFC 9110 7.2), narrowed to what real hosts use: a name
     * of letters, digits, "-._~" and escapes, an IPv4 address, or an IP literal in brackets.
     * No userinfo, no path, no list, no whitespace.
     */
    static boolean isHost(String h) {
        int end; // where the host ends and ":port", if any, begins
        if (h.startsWith("[")) {
            end = h.indexOf(']') + 1;
            if (end < 3) return false;
            for (int i = 1; i < end - 1; i++) {
                char c = h.charAt(i);
                if (!isHex(c) && c != ':' && c != '.') return false;
            }
        } else {
            end = h.indexOf(':');
            if (end < 0) end = h.length();
            if (end == 0) return false;
            for (int i = 0; i < end; i++) {
                char c = h.charAt(i);
                boolean ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
                        || c == '-' || c == '.' || c == '_' || c == '~';
                if (!ok) return false;
            }
        }
        String port = h.substring(end);
        return port.isEmpty() || port.length() <= 6 && port.charAt(0) == ':'
                && (port.length() == 1 || isDigits(port.substring(1)));
    }

    /** 1*DIGIT */
    static boolean isDigits(String s) {
        if (s.isEmpty()) return false;
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) < '0' || s.charAt(i) > '9') return false;
        }
        return true;
    }

    /** The host part of a Host value, lowercased, without the port: nginx's $host. */
    static String hostName(String host) {
        if (host.startsWith("[")) return host.substring(0, host.indexOf(']') + 1).toLowerCase();
        int colon = host.indexOf(':');
        return (colon < 0 ? host : host.substring(0, colon)).toLowerCase();
    }

    static boolean isHex(char c) {
        return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F';
    }

    /** Strips optional whitespace: SP and HTAB only (RFC 9110 5.6.3), never NBSP, VT or FF. */
    static String stripOws(String s) {
        int a = 0, b = s.length();
        while (a < b && (s.charAt(a) == ' ' || s.charAt(a) == '\t')) a++;
        while (b > a && (s.charAt(b - 1) == ' ' || s.charAt(b - 1) == '\t')) b--;
        return s.substring(a, b);
    }

    private static int indexOfAny(String s, String chars, int from) {
        for (int i = from; i < s.length(); i++) {
            if (chars.indexOf(s.charAt(i)) >= 0) return i;
        }
        return s.length();
    }

    private static HttpError bad(String reason) {
        return HttpError.bad(400, reason);
    }
}
