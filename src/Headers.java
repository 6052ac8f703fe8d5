import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * The header fields of one message, in the order they arrived and with their original
 * spelling; names compare case-insensitively (RFC 9110 section 5.1). Values are kept as
 * ISO-8859-1 strings, so every byte survives the round trip unchanged (RFC 9110 5.5:
 * obs-text is opaque data).
 */
final class Headers implements Iterable<Headers.Field> {
    record Field(String name, String value) {}

    private final List<Field> fields = new ArrayList<>();

    void add(String name, String value) {
        fields.add(new Field(name, value));
    }

    /** The first value of the field, or null. */
    String first(String name) {
        for (Field f : fields) {
            if (f.name.equalsIgnoreCase(name)) return f.value;
        }
        return null;
    }

    List<String> all(String name) {
        List<String> values = new ArrayList<>(1);
        for (Field f : fields) {
            if (f.name.equalsIgnoreCase(name)) values.add(f.value);
        }
        return values;
    }

    boolean has(String name) {
        return first(name) != null;
    }

    void remove(String name) {
        fields.removeIf(f -> f.name.equalsIgnoreCase(name));
    }

    void removeIf(java.util.function.Predicate<Field> which) {
        fields.removeIf(which);
    }

    /** Replaces every field of that name with one field. */
    void set(String name, String value) {
        remove(name);
        add(name, value);
    }

    /** True if a comma-separated list field (e.g. Connection) contains the token, in any case. */
    boolean hasToken(String name, String token) {
        for (String value : all(name)) {
            for (String element : value.split(",")) {
                if (element.strip().equalsIgnoreCase(token)) return true;
            }
        }
        return false;
    }

    /** Every comma-separated element of every field of that name, trimmed, empty ones left out. */
    List<String> tokens(String name) {
        List<String> out = new ArrayList<>();
        for (String value : all(name)) {
            for (String element : value.split(",")) {
                String t = element.strip();
                if (!t.isEmpty()) out.add(t);
            }
        }
        return out;
    }

    @Override
    public Iterator<Field> iterator() {
        return fields.iterator();
    }

    /** Writes "name: value\r\n" for each field: the wire form of a field section. */
    void appendTo(StringBuilder out) {
        for (Field f : fields) {
            out.append(f.name).append(": ").append(f.value).append("\r\n");
        }
    }

    static byte[] bytes(StringBuilder head) {
        return head.toString().getBytes(StandardCharsets.ISO_8859_1);
    }
}
