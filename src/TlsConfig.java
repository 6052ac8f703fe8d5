import java.nio.file.Path;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;

/**
 * The HTTPS settings, read from the configuration's keys with nginx's names:
 *
 * <pre>
 *   listen = 0.0.0.0:443 ssl, 0.0.0.0:80     the "ssl" flag marks a TLS listener
 *   ssl_certificate = a.pem, b.pem           PEM chains, paired in order with...
 *   ssl_certificate_key = a.key, b.key       ...their keys (PKCS#8, PKCS#1 RSA, SEC1 EC)
 *   ssl_protocols = TLSv1.2 TLSv1.3
 *   ssl_ciphers =                            empty: forward secrecy and AEAD only
 *   redirect_https = on                      plain listeners redirect to the TLS one
 * </pre>
 *
 * The certificates are loaded here, so that a bad one (encrypted, not its key's, not PEM)
 * is a problem of the file like any bad value, found by --check too. Null from
 * {@link #read} when no listener says ssl: then nothing of TLS is made.
 */
record TlsConfig(Set<Integer> listeners, List<Certificates.Pair> pairs, String[] protocols, String[] ciphers,
                 boolean redirectHttps, List<String> warnings) {

    /** The keys and their defaults (Config.DEFAULTS takes them). */
    static void defaults(Map<String, String> d) {
        d.put("ssl_certificate", "");
        d.put("ssl_certificate_key", "");
        d.put("ssl_protocols", "TLSv1.2 TLSv1.3");
        d.put("ssl_ciphers", "");
        d.put("redirect_https", "off");
    }

    /**
     * The default suites, strongest first: TLS 1.3's three, then TLS 1.2's ECDHE with
     * AES-GCM or ChaCha20-Poly1305 (forward secrecy, AEAD; Mozilla's "intermediate").
     */
    static final String[] MODERN = {
            "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"};

    /** OpenSSL's names for TLS 1.2's ECDHE AEAD suites, as nginx configurations write them. */
    private static final Pattern OPENSSL_NAME = Pattern.compile(
            "ECDHE-(RSA|ECDSA)-(?:AES(128|256)-GCM-(SHA256|SHA384)|(CHACHA20-POLY1305))");

    /** TLS 1.0 and 1.1: accepted in the file, never enabled (RFC 8996 deprecates them). */
    private static final Set<String> DEPRECATED = Set.of("TLSv1", "TLSv1.1", "SSLv3");

    /** Reads the keys of {@code v}; problems are added to {@code problems}, each naming its key. */
    static TlsConfig read(Map<String, String> v, String source, List<String> problems) {
        Set<Integer> listeners = new LinkedHashSet<>();
        String[] listen = v.get("listen").split(",");
        for (int i = 0, n = 0; i < listen.length; i++) {
            if (listen[i].isBlank()) continue;
            if (isSsl(listen[i])) listeners.add(n);
            n++;
        }
        List<String> certs = list(v.get("ssl_certificate"));
        List<String> keys = list(v.get("ssl_certificate_key"));
        boolean redirect = switch (v.get("redirect_https")) {
            case "on" -> true;
            case "off" -> false;
            default -> {
                problems.add(source + ": key 'redirect_https': expected on or off (value: '" + v.get("redirect_https") + "')");
                yield false;
            }
        };
        if (listeners.isEmpty()) {
            if (redirect) problems.add(source + ": key 'redirect_https': needs a listener marked ssl in 'listen'");
            return null; // no TLS: nothing of it is loaded or made
        }
        List<String> warnings = new ArrayList<>();
        if (certs.isEmpty() || certs.size() != keys.size()) {
            problems.add(source + ": key 'ssl_certificate': a listener says ssl: give ssl_certificate and "
                    + "ssl_certificate_key, as many of one as of the other (" + certs.size() + " and " + keys.size() + ")");
        }
        List<Certificates.Pair> pairs = new ArrayList<>();
        for (int i = 0; i < Math.min(certs.size(), keys.size()); i++) {
            try {
                pairs.add(Certificates.load(Path.of(certs.get(i)), Path.of(keys.get(i)), warnings));
            } catch (Pem.Bad e) {
                problems.add(source + ": key " + e.getMessage());
            }
        }
        return new TlsConfig(Set.copyOf(listeners), List.copyOf(pairs), protocols(v, source, problems, warnings),
                ciphers(v, source, problems), redirect, List.copyOf(warnings));
    }

    /** "0.0.0.0:443 ssl": the address, and the flag after it. */
    static boolean isSsl(String listenItem) {
        String[] words = listenItem.strip().split("\\s+");
        return words.length == 2 && words[1].equals("ssl");
    }

    /** A listen item without its flag (Config reads the address). */
    static String address(String listenItem) {
        String s = listenItem.strip();
        return isSsl(s) ? s.substring(0, s.length() - 3).strip() : s;
    }

    private static String[] protocols(Map<String, String> v, String source, List<String> problems, List<String> warnings) {
        List<String> out = new ArrayList<>();
        List<String> dropped = new ArrayList<>();
        for (String p : v.get("ssl_protocols").split("[\\s,]+")) {
            if (p.isEmpty()) continue;
            if (DEPRECATED.contains(p)) dropped.add(p);
            else if (p.equals("TLSv1.2") || p.equals("TLSv1.3")) out.add(p);
            else problems.add(source + ": key 'ssl_protocols': unknown protocol '" + p + "'; expected TLSv1.2, TLSv1.3");
        }
        if (!dropped.isEmpty()) {
            warnings.add("ssl_protocols: " + String.join(" and ", dropped) + " stay disabled: RFC 8996 deprecates "
                    + "TLS 1.0 and 1.1; serving " + (out.isEmpty() ? "none" : String.join(" ", out)));
        }
        if (out.isEmpty()) problems.add(source + ": key 'ssl_protocols': needs TLSv1.2 or TLSv1.3");
        return out.toArray(String[]::new);
    }

    private static String[] ciphers(Map<String, String> v, String source, List<String> problems) {
        String text = v.get("ssl_ciphers");
        if (text.isBlank()) return MODERN;
        Set<String> supported;
        try {
            supported = Set.of(SSLContext.getDefault().getSupportedSSLParameters().getCipherSuites());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e); // java.base always has TLS
        }
        List<String> out = new ArrayList<>();
        for (String c : text.split("[\\s,:]+")) {
            if (c.isEmpty()) continue;
            String name = jdkName(c);
            if (supported.contains(name)) out.add(name);
            else problems.add(source + ": key 'ssl_ciphers': unknown cipher suite '" + c + "' (the JDK's names, "
                    + "such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, or OpenSSL's ECDHE ones)");
        }
        return out.toArray(String[]::new);
    }

    /** ECDHE-RSA-AES128-GCM-SHA256 is TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; other names as they are. */
    private static String jdkName(String name) {
        Matcher m = OPENSSL_NAME.matcher(name);
        if (!m.matches()) return name;
        if (m.group(4) != null) return "TLS_ECDHE_" + m.group(1) + "_WITH_CHACHA20_POLY1305_SHA256";
        return "TLS_ECDHE_" + m.group(1) + "_WITH_AES_" + m.group(2) + "_GCM_" + m.group(3);
    }

    private static List<String> list(String text) {
        List<String> out = new ArrayList<>();
        for (String s : text.split(",")) if (!s.isBlank()) out.add(s.strip());
        return out;
    }
}
