import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A program a test runs as a child process (the proxy with a real configuration file, the
 * Flask app, curl, make). Two things make such tests safe to leave running in CI:
 *
 * <ul>
 * <li>Its standard output and error are read line by line on threads of their own, and a
 *     test waits for a line with a deadline ({@link #awaitStdout}). A plain
 *     {@code readLine} on a child's pipe can't be interrupted, so a child that never
 *     prints would hang the test past any JUnit timeout.
 * <li>{@link #close} kills the process and every process it started, and waits until they
 *     are gone. Use it in try-with-resources, so an assertion that fails stops it too.
 * </ul>
 */
final class Child implements AutoCloseable {
    private static final String END = new String("end of stream"); // compared by identity

    final Process process;
    private final String name;
    private final BlockingQueue<String> stdout = new LinkedBlockingQueue<>();
    private final BlockingQueue<String> stderr = new LinkedBlockingQueue<>();
    private final StringBuffer transcript = new StringBuffer(); // all output seen, for failure messages

    private Child(String name, Process process) {
        this.name = name;
        this.process = process;
        read(process.getInputStream(), stdout, "out");
        read(process.getErrorStream(), stderr, "err");
    }

    /** Starts the command in the working directory (the project's root, where make test runs). */
    static Child start(List<String> command) throws IOException {
        return start(new ProcessBuilder(command));
    }

    static Child start(ProcessBuilder builder) throws IOException {
        return new Child(String.join(" ", builder.command()), builder.start());
    }

    /** The java that runs the tests, to start the proxy with the same JDK. */
    static String java() {
        return ProcessHandle.current().info().command().orElseThrow();
    }

    private void read(InputStream in, BlockingQueue<String> lines, String stream) {
        Thread.ofPlatform().daemon().name("child " + stream).start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                for (String l; (l = r.readLine()) != null; ) {
                    transcript.append(stream).append("| ").append(l).append('\n');
                    lines.add(l);
                }
            } catch (IOException ignored) {
                // the process is gone
            } finally {
                lines.add(END);
            }
        });
    }

    /** Waits for a line of standard output that matches; fails if none comes within the time. */
    Matcher awaitStdout(Pattern pattern, Duration within) throws InterruptedException {
        return await(stdout, "stdout", pattern, within);
    }

    /** Waits for a line of standard error that matches; fails if none comes within the time. */
    Matcher awaitStderr(Pattern pattern, Duration within) throws InterruptedException {
        return await(stderr, "stderr", pattern, within);
    }

    private Matcher await(BlockingQueue<String> lines, String stream, Pattern pattern, Duration within)
            throws InterruptedException {
        long deadline = System.nanoTime() + within.toNanos();
        while (true) {
            String line = lines.poll(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
            if (line == null || line == END) {
                if (line == END) lines.add(END); // later calls see the end too
                throw new AssertionError((line == null ? "no line matching " : "the stream ended without a line matching ")
                        + pattern + " on the " + stream + " of `" + name + "` within " + within + "; its output:\n" + this);
            }
            Matcher m = pattern.matcher(line);
            if (m.find()) return m;
        }
    }

    /** Waits for the program to end by itself and for its output to be read; fails after the time. */
    int waitFor(Duration within) throws InterruptedException {
        if (!process.waitFor(within.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new AssertionError("`" + name + "` still runs after " + within + "; its output:\n" + this);
        }
        return process.exitValue();
    }

    /** All standard output once the program has ended (waitFor first), lines joined by \n. */
    String stdoutText() throws InterruptedException {
        return text(stdout, "stdout");
    }

    /** All standard error once the program has ended (waitFor first), lines joined by \n. */
    String stderrText() throws InterruptedException {
        return text(stderr, "stderr");
    }

    private String text(BlockingQueue<String> lines, String stream) throws InterruptedException {
        StringBuilder b = new StringBuilder();
        for (String l; (l = lines.poll(5, TimeUnit.SECONDS)) != END; ) {
            if (l == null) throw new AssertionError("the " + stream + " of `" + name + "` did not end");
            if (!b.isEmpty()) b.append('\n');
            b.append(l);
        }
        lines.add(END);
        return b.toString();
    }

    /**
     * Kills the process and all its descendants (SIGKILL), and waits until each has gone.
     * If the process leads a process group of its own (started through {@code setsid}), the
     * whole group is killed at once first: that also reaches a process started in between.
     */
    @Override
    public void close() {
        // Snapshot the descendants first: once their parent dies they are reparented to
        // init and no longer found through it.
        List<ProcessHandle> all = new java.util.ArrayList<>(process.descendants().toList());
        all.add(process.toHandle());
        if (process.isAlive() && leadsItsProcessGroup(process.pid())) killGroup(process.pid());
        for (ProcessHandle p : all) p.destroyForcibly();
        try {
            process.getOutputStream().close(); // our end of its stdin
        } catch (IOException ignored) {
            // already closed
        }
        for (ProcessHandle p : all) {
            try {
                p.onExit().get(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                throw new AssertionError("process " + p.pid() + " of `" + name + "` did not die", e);
            }
        }
    }

    /** Whether the process's group id is its own pid (field 5 of /proc/PID/stat, Linux). */
    private static boolean leadsItsProcessGroup(long pid) {
        try {
            String stat = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/" + pid + "/stat"));
            String[] after = stat.substring(stat.lastIndexOf(')') + 2).split(" "); // state ppid pgrp ...
            return Long.parseLong(after[2]) == pid;
        } catch (IOException | RuntimeException e) {
            return false; // gone already, or not Linux: the descendants are killed one by one
        }
    }

    /** kill -KILL -- -PGID: java.lang.Process has no way to signal a group. */
    private static void killGroup(long pgid) {
        try {
            Process kill = new ProcessBuilder("kill", "-KILL", "--", "-" + pgid).redirectErrorStream(true).start();
            kill.getInputStream().readAllBytes();
            kill.waitFor(5, TimeUnit.SECONDS);
        } catch (IOException e) {
            // no kill(1): the descendants are still killed one by one
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return transcript.toString();
    }
}
