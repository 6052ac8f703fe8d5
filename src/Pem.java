import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * PEM files as certbot and openssl write them (RFC 7468), read with java.base alone: a
 * certificate chain ("CERTIFICATE" blocks, the server's first), and a private key in one
 * of the three forms openssl writes:
 *
 * <ul>
 *   <li>"PRIVATE KEY": PKCS#8 (RFC 5208), which {@link KeyFactory} reads as it is;
 *   <li>"RSA PRIVATE KEY": PKCS#1 (RFC 8017 A.1.2), the RSA key alone;
 *   <li>"EC PRIVATE KEY": SEC1 (RFC 5915), the EC key with its curve.
 * </ul>
 *
 * The JDK reads only PKCS#8, so the other two are wrapped into it here by a few lines of
 * DER (X.690): PKCS#8 is the key as it is, inside a SEQUENCE that names its algorithm.
 * An encrypted key is refused with a message saying how to decrypt it: the proxy starts
 * unattended and has no one to ask for a passphrase.
 */
final class Pem {
    /** A file that can't be used, with the reason (the caller adds which file and key). */
    static final class Bad extends Exception {
        Bad(String why) {
            super(why);
        }
    }

    private static final Pattern BLOCK = Pattern.compile(
            "-----BEGIN ([A-Z0-9 ]+)-----\\r?\\n(.*?)-----END \\1-----", Pattern.DOTALL);

    // DER tags and the object identifiers of the algorithms (RFC 8017, RFC 5480).
    private static final int SEQUENCE = 0x30, INTEGER = 0x02, OCTET_STRING = 0x04, NULL = 0x05;
    private static final byte[] RSA_ENCRYPTION = oid(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01);
    private static final byte[] EC_PUBLIC_KEY = oid(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01);

    private Pem() {}

    /** The certificates of a chain file, in the order given (the server's own first). */
    static List<X509Certificate> certificates(byte[] file) throws Bad {
        List<X509Certificate> chain = new ArrayList<>();
        try {
            CertificateFactory factory = CertificateFactory.getInstance("X.509");
            for (Block b : blocks(file)) {
                if (!b.type.equals("CERTIFICATE")) continue;
                chain.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(b.der)));
            }
        } catch (CertificateException e) {
            throw new Bad("not a valid certificate: " + e.getMessage());
        }
        if (chain.isEmpty()) throw new Bad("no certificate in it (expected -----BEGIN CERTIFICATE-----)");
        return chain;
    }

    /** The private key of a key file: PKCS#8, PKCS#1 RSA or SEC1 EC. */
    static PrivateKey privateKey(byte[] file) throws Bad {
        for (Block b : blocks(file)) {
            switch (b.type) {
                case "PRIVATE KEY" -> {
                    return pkcs8(b.der);
                }
                case "RSA PRIVATE KEY" -> {
                    if (b.encrypted) throw encrypted();
                    return pkcs8(der(SEQUENCE, der(INTEGER, new byte[] {0}),
                            der(SEQUENCE, RSA_ENCRYPTION, der(NULL)), der(OCTET_STRING, b.der)));
                }
                case "EC PRIVATE KEY" -> {
                    if (b.encrypted) throw encrypted();
                    return pkcs8(der(SEQUENCE, der(INTEGER, new byte[] {0}),
                            der(SEQUENCE, EC_PUBLIC_KEY, curveOf(b.der)), der(OCTET_STRING, b.der)));
                }
                case "ENCRYPTED PRIVATE KEY" -> throw encrypted();
                default -> { } // EC PARAMETERS (openssl ecparam -genkey writes them first), a certificate...
            }
        }
        throw new Bad("no private key in it (expected -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)");
    }

    private static Bad encrypted() {
        return new Bad("the key is encrypted (it has a passphrase); write it decrypted with "
                + "'openssl pkey -in KEY -out KEY.plain' and name that file");
    }

    /** A PKCS#8 key of whichever algorithm reads it. */
    private static PrivateKey pkcs8(byte[] der) throws Bad {
        for (String algorithm : List.of("RSA", "EC", "Ed25519", "Ed448", "RSASSA-PSS")) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
            } catch (GeneralSecurityException e) {
                // not this algorithm: try the next
            }
        }
        throw new Bad("not a private key the JDK can read (RSA, EC or EdDSA)");
    }

    /** The curve of a SEC1 key: its [0] parameters, a named curve's OID (RFC 5915 3). */
    private static byte[] curveOf(byte[] sec1) throws Bad {
        int[] p = {0};
        if (tag(sec1, p) != SEQUENCE) throw new Bad("not a SEC1 EC key");
        int end = length(sec1, p) + p[0];
        while (p[0] < end) {
            int tag = tag(sec1, p);
            int len = length(sec1, p);
            if (tag == 0xa0) { // [0] EXPLICIT ECParameters: the OID of a named curve
                if (len == 0) throw new Bad("not a SEC1 EC key (empty curve parameters)");
                byte[] curve = new byte[len];
                System.arraycopy(sec1, p[0], curve, 0, len);
                if (curve[0] != 0x06) throw new Bad("an EC key with explicit curve parameters (use a named curve)");
                return curve;
            }
            p[0] += len;
        }
        throw new Bad("an EC key without its curve (write it with 'openssl ec -param_out')");
    }

    private static int tag(byte[] der, int[] p) throws Bad {
        if (p[0] >= der.length) throw new Bad("a DER structure cut short");
        return der[p[0]++] & 0xff;
    }

    private static int length(byte[] der, int[] p) throws Bad {
        int first = tag(der, p);
        int len = first;
        if (first >= 0x80) {
            int n = first & 0x7f;
            if (n > 3) throw new Bad("a DER length too large");
            len = 0;
            for (int i = 0; i < n; i++) len = len << 8 | tag(der, p);
        }
        if (p[0] + len > der.length) throw new Bad("a DER structure cut short");
        return len;
    }

    /** One DER element: the tag, the length (X.690 8.1.3), the contents. */
    private static byte[] der(int tag, byte[]... contents) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        for (byte[] c : contents) body.writeBytes(c);
        int n = body.size();
        ByteArrayOutputStream out = new ByteArrayOutputStream(n + 6);
        out.write(tag);
        if (n < 0x80) {
            out.write(n);
        } else {
            int bytes = n < 0x100 ? 1 : n < 0x10000 ? 2 : 3;
            out.write(0x80 | bytes);
            for (int i = bytes - 1; i >= 0; i--) out.write(n >> (8 * i));
        }
        out.writeBytes(body.toByteArray());
        return out.toByteArray();
    }

    private static byte[] oid(int... encoded) {
        byte[] b = new byte[encoded.length];
        for (int i = 0; i < b.length; i++) b[i] = (byte) encoded[i];
        return der(0x06, b);
    }

    /** One PEM block: its type, whether it has the old "Proc-Type: 4,ENCRYPTED" header, its bytes. */
    private record Block(String type, boolean encrypted, byte[] der) {}

    private static List<Block> blocks(byte[] file) throws Bad {
        List<Block> out = new ArrayList<>();
        Matcher m = BLOCK.matcher(new String(file, StandardCharsets.ISO_8859_1));
        while (m.find()) {
            String body = m.group(2);
            boolean encrypted = body.contains("ENCRYPTED") && body.contains("Proc-Type:");
            if (encrypted) {
                out.add(new Block(m.group(1), true, new byte[0]));
                continue;
            }
            try {
                out.add(new Block(m.group(1), false, Base64.getMimeDecoder().decode(body)));
            } catch (IllegalArgumentException e) {
                throw new Bad("a " + m.group(1) + " block that is not valid base64");
            }
        }
        if (out.isEmpty()) throw new Bad("not a PEM file (no -----BEGIN ...----- block)");
        return out;
    }
}
