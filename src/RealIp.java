import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Whose address a request comes from, nginx's realip module: the peer's, unless the peer
 * is a proxy we trust (set_real_ip_from: addresses and CIDR ranges), in which case the
 * client is the last address in real_ip_header (X-Forwarded-For by default) that is not
 * itself trusted, walking from the right, as {@code real_ip_recursive on} does. Only the
 * addresses on the right, added by proxies we trust, can be believed; whatever is left of
 * the first untrusted one was written by someone we know nothing of.
 */
final class RealIp {
    /** No trusted proxies: every request is from its peer. */
    static final RealIp NONE = new RealIp(List.of());

    /** One trusted range: the first {@code bits} bits of {@code network}. */
    private record Range(byte[] network, int bits) {
        boolean contains(byte[] a) {
            if (a.length != network.length) return false;
            for (int i = 0; i < bits; i++) {
                int mask = 0x80 >>> (i % 8);
                if ((a[i / 8] & mask) != (network[i / 8] & mask)) return false;
            }
            return true;
        }
    }

    private static final Pattern IPV4 = Pattern.compile("(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}");
    private static final Pattern IPV6 = Pattern.compile("[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*");

    private final List<Range> trusted;

    private RealIp(List<Range> trusted) {
        this.trusted = trusted;
    }

    /**
     * "127.0.0.1, 10.0.0.0/8, fd00::/8": each an IPv4 or IPv6 address, with or without a
     * prefix length. Throws IllegalArgumentException naming the entry that is not one.
     */
    static RealIp parse(String list) {
        List<Range> ranges = new ArrayList<>();
        for (String entry : list.split(",")) {
            entry = entry.strip();
            if (entry.isEmpty()) continue;
            int slash = entry.indexOf('/');
            byte[] address = literal(slash < 0 ? entry : entry.substring(0, slash));
            if (address == null) throw new IllegalArgumentException("not an address or CIDR range: '" + entry + "'");
            int bits = address.length * 8;
            if (slash >= 0) {
                String prefix = entry.substring(slash + 1);
                if (!prefix.matches("\\d{1,3}") || Integer.parseInt(prefix) > bits) {
                    throw new IllegalArgumentException("bad prefix length in '" + entry + "'");
                }
                bits = Integer.parseInt(prefix);
            }
            ranges.add(new Range(address, bits));
        }
        return new RealIp(List.copyOf(ranges));
    }

    /** Whether the address is one of the trusted proxies. */
    boolean trusts(InetAddress a) {
        byte[] bytes = a.getAddress();
        for (Range r : trusted) {
            if (r.contains(bytes)) return true;
        }
        return false;
    }

    /**
     * The client's address: the peer's, or if the peer is trusted, the last untrusted one
     * in the header's values (all of its fields, in order). An entry that is not an address
     * ends the walk: the one before it (trusted) is taken. If all are trusted, the first.
     */
    InetAddress client(InetAddress peer, List<String> header) {
        if (!trusts(peer)) return peer;
        List<String> hops = new ArrayList<>();
        for (String field : header) {
            for (String hop : field.split(",")) hops.add(hop.strip());
        }
        InetAddress client = peer;
        for (int i = hops.size() - 1; i >= 0; i--) {
            byte[] a = literal(hops.get(i));
            if (a == null) break;
            try {
                client = InetAddress.getByAddress(a);
            } catch (UnknownHostException impossible) {
                break; // only thrown for a wrong length
            }
            if (!trusts(client)) break;
        }
        return client;
    }

    /**
     * The bytes of an IPv4 or IPv6 address literal, or null. Checked by pattern first, so
     * that {@link InetAddress#getByName} only ever parses, and never looks a name up.
     */
    private static byte[] literal(String s) {
        if (!IPV4.matcher(s).matches() && !IPV6.matcher(s).matches()) return null;
        try {
            return InetAddress.getByName(s).getAddress();
        } catch (UnknownHostException e) {
            return null;
        }
    }
}
