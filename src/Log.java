import java.io.FileDescriptor;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;

/**
 * The two logs, as nginx keeps them. The access log has a line per request, in the
 * {@code log_format} ({@link LogFormat}; nginx's "combined" by default, which goaccess and
 * friends read). The error log has a line per event that matters, with its level, one of
 * nginx's; error_log's level says the least severe one written:
 *
 * <pre>  2026/12/01 19:00:00 [notice] listening on 127.0.0.1:8080, upstream [127.0.0.1:5000]</pre>
 *
 * <p>No request waits for a disk or a pipe: each log is a {@link LogFile}, written by a
 * thread of its own, and a request only hands it a line. When a log falls behind so far
 * that lines are dropped, the error log's thread says how many, once a second.
 */
final class Log implements AutoCloseable {
    /** nginx's levels, least severe first; error_log's level is the least severe one written. */
    enum Level {
        DEBUG, INFO, NOTICE, WARN, ERROR, CRIT, ALERT, EMERG;

        final String label = name().toLowerCase(Locale.ROOT);
    }

    private static final DateTimeFormatter ERROR_TIME = DateTimeFormatter.ofPattern("yyyy/MM/dd HH:mm:ss", Locale.US);

    private final LogFile access; // null when access_log is off
    private final LogFile errors;
    private final LogFormat format;
    private final Level level;

    Log(Config config) throws IOException {
        this.format = new LogFormat(config.logFormat());
        this.level = config.errorLogLevel();
        this.errors = new LogFile("error log", config.errorLog(), FileDescriptor.err);
        try {
            this.access = config.accessLog().equals("off") ? null
                    : new LogFile("access log", config.accessLog(), FileDescriptor.out);
        } catch (IOException e) {
            errors.close(); // don't leak the one that did open
            throw e;
        }
        // Started only now, when both are in place: the error log's thread reports for both,
        // since a stuck access log can't report itself.
        errors.start(this::reportDropped);
        if (access != null) access.start(() -> { });
    }

    /** Hands the exchange's line to the access log's writer. */
    void access(LogFormat.Entry entry) {
        if (access != null) access.offer(format.line(entry));
    }

    /** Whether lines of this level are written (to skip building a message nobody reads). */
    boolean enabled(Level l) {
        return l.compareTo(level) >= 0;
    }

    /** One line in the error log, if its level is written. Control characters are escaped: one event, one line. */
    void log(Level l, String message) {
        if (enabled(l)) errors.offer(errorLine(l, message));
    }

    void info(String message) {
        log(Level.INFO, message);
    }

    void notice(String message) {
        log(Level.NOTICE, message);
    }

    void warn(String message) {
        log(Level.WARN, message);
    }

    void error(String message) {
        log(Level.ERROR, message);
    }

    /**
     * Something that should not happen (a bug, the JVM out of memory) while {@code doing}:
     * crit, with its stack trace, the only entry that has one. Expected failures (a client
     * gone, an upstream refusing) are one line each, without. Never throws: its callers are
     * the loops that must go on (accepting, the watchdog, idle connections), and the report
     * itself may find no memory left; then it is not said.
     */
    void unexpected(String doing, Throwable e) {
        if (!enabled(Level.CRIT)) return;
        try {
            StringWriter trace = new StringWriter();
            e.printStackTrace(new PrintWriter(trace));
            String text = trace.toString();
            String frames = text.substring(text.indexOf('\n') + 1); // the first line is e itself
            errors.offer(errorLine(Level.CRIT, "unexpected " + e + " while " + doing) + frames);
        } catch (RuntimeException | Error unsaid) {
            // out of memory for the report itself: going on matters more than saying it
        }
    }

    /**
     * Writes what is queued, reports what was dropped, and closes the files this Log opened
     * (see {@link LogFile#close}). A line logged after this (by a connection still
     * finishing) is dropped.
     */
    @Override
    public void close() {
        if (access != null) access.close(); // first: the error log's thread reports its drops as it ends
        errors.close();
    }

    /**
     * On the error log's writer thread, once a second and at the end: how many lines each log
     * dropped since the last time, and why, written at once. A report that can't be written
     * keeps its count for the next one.
     */
    private void reportDropped() {
        for (LogFile f : access == null ? List.of(errors) : List.of(access, errors)) {
            long n = f.takeDropped();
            if (n == 0) continue;
            String why = f.takeFailure();
            String line = errorLine(Level.ERROR, f.name + ": " + n + " line" + (n == 1 ? "" : "s") + " dropped: "
                    + (why != null ? why : "writing fell " + LogFile.MAX_QUEUED / (1 << 20) + " MiB behind"));
            if (!enabled(Level.ERROR) || !errors.write(line)) f.keepDropped(n);
        }
    }

    private static String errorLine(Level l, String message) {
        return ERROR_TIME.format(LocalDateTime.now()) + " [" + l.label + "] " + oneLine(message) + "\n";
    }

    private static String oneLine(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) < 0x20 || s.charAt(i) == 0x7f) return LogFormat.escapeControls(s);
        }
        return s;
    }
}
