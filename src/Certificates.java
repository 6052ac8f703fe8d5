import java.io.IOException;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.security.GeneralSecurityException;
import javax.net.ssl.ExtendedSSLSession;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SNIServerName;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSession;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.security.auth.x500.X500Principal;

/**
 * The server's certificates (ssl_certificate, ssl_certificate_key): the pairs, which one a
 * handshake gets, and their renewal on disk.
 *
 * <p>Which pair: the one whose names (subjectAltName DNS names, or the CN without any)
 * match the name the client asked for (SNI, RFC 6066 3); without a match, or without SNI,
 * the first, as nginx's default server. This is the JDK's own question to a key manager
 * ({@link #chooseEngineServerAlias}), asked once per key type the client can accept.
 *
 * <p>Renewal: certbot replaces the files in place. Once a second a platform thread of
 * its own compares each file's modified time and size with what was loaded; when they
 * change and both files parse and belong together, new handshakes get the new pair; a
 * broken new file is logged, and the old pair stays.
 */
final class Certificates extends X509ExtendedKeyManager implements AutoCloseable {
    /** How often the files are looked at. */
    static final long CHECK_MILLIS = 1000;

    /** One certificate chain and its key, as loaded from their two files. */
    record Pair(String alias, Path certificate, Path key, X509Certificate[] chain, PrivateKey privateKey,
                List<String> names, String stamp) {
        String keyType() {
            String a = privateKey.getAlgorithm();
            return a.equals("Ed25519") || a.equals("Ed448") ? "EdDSA" : a;
        }

        boolean serves(String host) {
            for (String n : names) {
                if (n.equals(host)) return true;
                // "*.example.com" covers one label: a.example.com, not example.com or a.b.example.com (RFC 6125 6.4.3)
                if (n.startsWith("*.") && host.endsWith(n.substring(1)) && host.indexOf('.') == host.length() - n.length() + 1) {
                    return true;
                }
            }
            return false;
        }
    }

    private static final AtomicInteger ALIASES = new AtomicInteger();

    static {
        // A client-initiated TLS 1.2 renegotiation would make the engine handshake while a
        // thread writes a response; nginx refuses them too (since 1.9.0 for HTTP).
        if (System.getProperty("jdk.tls.rejectClientInitiatedRenegotiation") == null) {
            System.setProperty("jdk.tls.rejectClientInitiatedRenegotiation", "true");
        }
    }

    private volatile List<Pair> pairs;
    // Every pair a handshake may still be using: the JDK asks for the alias first, then its chain and key.
    private final Map<String, Pair> byAlias = new ConcurrentHashMap<>();
    private final Consumer<String> error;
    private final SSLContext context;
    private final TlsConfig settings;
    private volatile Thread watcher;

    Certificates(TlsConfig settings, Consumer<String> error) {
        this.settings = settings;
        this.pairs = settings.pairs();
        this.error = error;
        pairs.forEach(p -> byAlias.put(p.alias, p));
        try {
            context = SSLContext.getInstance("TLS");
            context.init(new KeyManager[] {this}, null, null);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("TLS is part of java.base: " + e, e);
        }
    }

    /**
     * The engine of one new connection: the configured protocols and suites, the server's
     * order of suites, and ALPN offering http/1.1 alone (RFC 7301: a client that wants
     * only h2 is refused in the handshake rather than misunderstood after it).
     */
    SSLEngine newEngine() {
        SSLEngine engine = context.createSSLEngine();
        engine.setUseClientMode(false);
        SSLParameters p = engine.getSSLParameters();
        p.setProtocols(settings.protocols());
        p.setCipherSuites(settings.ciphers());
        p.setUseCipherSuitesOrder(true);
        p.setApplicationProtocols(new String[] {"http/1.1"});
        engine.setSSLParameters(p);
        return engine;
    }

    /** Starts the once-a-second look at the files. */
    Certificates watch() {
        watcher = Thread.ofPlatform().daemon().name("certificates").start(this::run);
        return this;
    }

    /**
     * Loads one pair; throws Bad naming what is wrong: the key encrypted, the key not the
     * certificate's, a file that is not PEM. An expired certificate loads (a warning: the
     * proxy starts, and serves it until certbot renews it), noted in {@code warnings}.
     */
    static Pair load(Path certificate, Path key, List<String> warnings) throws Pem.Bad {
        // Taken before the files are read: a change while they are read is seen at the next look.
        String stamp = stamp(certificate, key);
        byte[] certBytes, keyBytes;
        try {
            certBytes = Files.readAllBytes(certificate);
        } catch (IOException e) {
            throw new Pem.Bad("ssl_certificate " + certificate + ": cannot read: " + e.getMessage());
        }
        try {
            keyBytes = Files.readAllBytes(key);
        } catch (IOException e) {
            throw new Pem.Bad("ssl_certificate_key " + key + ": cannot read: " + e.getMessage());
        }
        List<X509Certificate> chain;
        PrivateKey privateKey;
        try { // a RuntimeException, too, is a file this parser could not make sense of: one line, its name
            chain = Pem.certificates(certBytes);
        } catch (Pem.Bad | RuntimeException e) {
            throw new Pem.Bad("ssl_certificate " + certificate + ": " + (e instanceof Pem.Bad ? e.getMessage() : e));
        }
        try {
            privateKey = Pem.privateKey(keyBytes);
        } catch (Pem.Bad | RuntimeException e) {
            throw new Pem.Bad("ssl_certificate_key " + key + ": " + (e instanceof Pem.Bad ? e.getMessage() : e));
        }
        X509Certificate leaf = chain.get(0);
        if (!belongTogether(privateKey, leaf.getPublicKey())) {
            throw new Pem.Bad("ssl_certificate_key " + key + " does not match the certificate in ssl_certificate " + certificate);
        }
        Date now = new Date();
        if (now.after(leaf.getNotAfter())) {
            warnings.add("ssl_certificate " + certificate + " expired on " + leaf.getNotAfter().toInstant()
                    + "; clients will refuse it");
        }
        return new Pair("pair-" + ALIASES.incrementAndGet(), certificate, key, chain.toArray(X509Certificate[]::new),
                privateKey, names(leaf), stamp);
    }

    /** The key signs, the certificate's public key verifies: they are one pair. */
    private static boolean belongTogether(PrivateKey key, PublicKey pub) {
        String algorithm = switch (key.getAlgorithm()) {
            case "RSA" -> "SHA256withRSA";
            case "EC" -> "SHA256withECDSA";
            case "RSASSA-PSS" -> "RSASSA-PSS";
            default -> key.getAlgorithm(); // Ed25519, Ed448
        };
        try {
            byte[] probe = new byte[32];
            new SecureRandom().nextBytes(probe);
            Signature s = Signature.getInstance(algorithm);
            if (algorithm.equals("RSASSA-PSS")) {
                s.setParameter(new java.security.spec.PSSParameterSpec("SHA-256", "MGF1",
                        java.security.spec.MGF1ParameterSpec.SHA256, 32, 1));
            }
            s.initSign(key);
            s.update(probe);
            byte[] signature = s.sign();
            s.initVerify(pub);
            s.update(probe);
            return s.verify(signature);
        } catch (java.security.GeneralSecurityException e) {
            return false; // an RSA key and an EC certificate, say
        }
    }

    /** The DNS names a certificate is for: its subjectAltNames, or its CN if it has none (RFC 6125 6.4.4). */
    private static List<String> names(X509Certificate cert) {
        List<String> out = new ArrayList<>();
        try {
            if (cert.getSubjectAlternativeNames() != null) {
                for (List<?> san : cert.getSubjectAlternativeNames()) {
                    if (((Integer) san.get(0)) == 2) out.add(((String) san.get(1)).toLowerCase(Locale.ROOT));
                }
            }
        } catch (CertificateParsingException e) {
            // no usable names: the CN below, if any
        }
        if (out.isEmpty()) {
            String dn = cert.getSubjectX500Principal().getName(X500Principal.RFC2253);
            for (String part : dn.split(",")) {
                if (part.startsWith("CN=")) out.add(part.substring(3).toLowerCase(Locale.ROOT));
            }
        }
        return out;
    }

    /** What a renewal changes: both files' modified times and sizes. */
    private static String stamp(Path certificate, Path key) {
        try {
            return Files.getLastModifiedTime(certificate) + "/" + Files.size(certificate) + " "
                    + Files.getLastModifiedTime(key) + "/" + Files.size(key);
        } catch (IOException e) {
            return "unreadable";
        }
    }

    private void run() {
        while (true) {
            try {
                Thread.sleep(CHECK_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
            List<Pair> now = new ArrayList<>(pairs);
            boolean changed = false;
            for (int i = 0; i < now.size(); i++) {
                Pair old = now.get(i);
                String seen = stamp(old.certificate, old.key); // before load reads them
                if (seen.equals(old.stamp)) continue;
                try {
                    List<String> warnings = new ArrayList<>();
                    Pair renewed = load(old.certificate, old.key, warnings);
                    warnings.forEach(error);
                    byAlias.put(renewed.alias, renewed);
                    now.set(i, renewed);
                    changed = true;
                } catch (Pem.Bad | RuntimeException e) {
                    // Half-written (certbot writes one file, then the other) or broken: keep the old
                    // pair, and look again next time. Said once per change of the files (the stamp
                    // seen before they were read). Whatever failed, this thread must go on.
                    error.accept((e instanceof Pem.Bad ? e.getMessage() : "ssl_certificate " + old.certificate
                            + ": cannot load: " + e) + "; still serving the certificate loaded before");
                    now.set(i, new Pair(old.alias, old.certificate, old.key, old.chain, old.privateKey, old.names, seen));
                    byAlias.put(old.alias, now.get(i));
                    changed = true;
                }
            }
            if (changed) {
                List<Pair> before = pairs;
                pairs = List.copyOf(now);
                for (Pair p : before) if (!pairs.contains(p) && pairs.stream().noneMatch(q -> q.alias.equals(p.alias))) {
                    byAlias.remove(p.alias); // a handshake that chose it a moment ago has its chain already
                }
            }
        }
    }

    @Override
    public void close() {
        Thread t = watcher;
        if (t != null) t.interrupt();
    }

    // ---- the JDK's questions (X509ExtendedKeyManager) ---------------------------------

    /**
     * The JDK asks once per key type the client accepts (EC first, usually): the answer is
     * the pair for the client's name if it has that type, else none, so that the question
     * comes again for the next type. Without a pair for the name: the first pair, the default.
     */
    @Override
    public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
        String host = requestedName(engine.getHandshakeSession());
        List<Pair> all = pairs;
        List<Pair> candidates = host == null ? List.of() : all.stream().filter(p -> p.serves(host)).toList();
        if (candidates.isEmpty()) candidates = all.stream().filter(p -> p.names.equals(all.get(0).names)).toList();
        for (Pair p : candidates) if (p.keyType().equals(keyType)) return p.alias;
        return null;
    }

    /** The host name the client sent in SNI, lowercased, or null. */
    static String requestedName(SSLSession session) {
        if (!(session instanceof ExtendedSSLSession s)) return null;
        for (SNIServerName name : s.getRequestedServerNames()) {
            if (name instanceof SNIHostName h) return h.getAsciiName().toLowerCase(Locale.ROOT);
        }
        return null;
    }

    @Override
    public X509Certificate[] getCertificateChain(String alias) {
        Pair p = byAlias.get(alias);
        return p == null ? null : p.chain.clone();
    }

    @Override
    public PrivateKey getPrivateKey(String alias) {
        Pair p = byAlias.get(alias);
        return p == null ? null : p.privateKey;
    }

    @Override
    public String[] getServerAliases(String keyType, Principal[] issuers) {
        return pairs.stream().filter(p -> p.keyType().equals(keyType)).map(Pair::alias).toArray(String[]::new);
    }

    @Override
    public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
        return null; // only engines are used
    }

    @Override
    public String[] getClientAliases(String keyType, Principal[] issuers) {
        return null; // a server only
    }

    @Override
    public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
        return null;
    }
}
