/*
 * Atlas instance bootstrap: the pre-launch command of an Atlas instance for
 * Prism Launcher and MultiMC,
 *
 *     "$INST_JAVA" -jar "$INST_DIR/atlas/atlas-bootstrap.jar"
 *
 * It runs the atlas-fetcher for this platform, and nothing else: a binary
 * whose SHA-256 and size are pinned in atlas/instance.properties (written by
 * atlas-builder into the instance archive) or in atlas/fetcher.properties
 * (written by an already pinned fetcher after it verified a signed pointer
 * naming a newer release). The binary comes from the store's blobs, is
 * hashed while it downloads, cached by hash, and hashed again just before it
 * runs. The fetcher then verifies the pack's signed pointer, its manifest
 * and every file, and exits with the launcher's answer: 0 starts the game.
 *
 * Java 8 only (compiled with `javac --release 8`): the launchers run it with
 * the Java they chose for the instance, which may be 8. No signature check
 * happens here (Java 8 has no Ed25519), and none is needed: a hash pin is
 * enough to decide what may run, and the Rust fetcher checks signatures.
 *
 * Also `java -jar atlas/atlas-bootstrap.jar channel [NAME | --default]`, run
 * from the instance folder: shows or sets the channel the instance follows
 * (the file atlas/channel).
 *
 * Lines for the launcher's log start with `!![Level]!` (Prism Launcher and
 * MultiMC read that prefix as the line's level). docs/SECURITY.md, "Players'
 * instances", has the threat model; docs/FORMAT.md section 10 the files.
 */

import java.io.BufferedReader;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import javax.net.ssl.HostnameVerifier;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

public final class AtlasBootstrap {
    static final String VERSION = "1";
    /** Exit code that stops the launch. */
    static final int STOP = 1;
    static final int USAGE = 2;
    static final int CONNECT_TIMEOUT_MS = 15000;
    static final int READ_TIMEOUT_MS = 30000;
    /** Cached fetchers kept (newest first); older ones are deleted after a good run. */
    static final int KEEP_CACHED = 3;

    /** A failure that ends the run with `code` after printing `message`. */
    static final class Stop extends Exception {
        private static final long serialVersionUID = 1L;
        final int code;
        final String level;

        Stop(int code, String level, String message) {
            super(message);
            this.code = code;
            this.level = level;
        }
    }

    /** The store could not be reached (as opposed to a wrong answer). */
    static final class Offline extends IOException {
        private static final long serialVersionUID = 1L;

        Offline(String message, Throwable cause) {
            super(message, cause);
        }
    }

    public static void main(String[] args) {
        int code;
        try {
            if (args.length >= 1 && args[0].equals("channel")) {
                code = channelCommand(Arrays.copyOfRange(args, 1, args.length));
            } else if (args.length == 0) {
                code = preLaunch();
            } else {
                log("Error", "unknown arguments " + Arrays.toString(args) + "; " + usage());
                code = USAGE;
            }
        } catch (Stop s) {
            log(s.level, s.getMessage());
            code = s.code;
        } catch (RuntimeException | IOException e) {
            log("Error", "Atlas: unexpected failure: " + e);
            code = STOP;
        }
        System.out.flush();
        System.exit(code);
    }

    static String usage() {
        return "usage: set as the instance's pre-launch command, "
                + "\"$INST_JAVA\" -jar \"$INST_DIR/atlas/atlas-bootstrap.jar\" (Prism Launcher or MultiMC run it), "
                + "or run `java -jar atlas/atlas-bootstrap.jar channel [NAME | --default]` in the instance folder";
    }

    static void log(String level, String message) {
        for (String line : message.split("\n", -1)) {
            System.out.println("!![" + level + "]!" + line);
        }
    }

    // ---- the instance's files -------------------------------------------------

    static Properties load(File f) throws Stop {
        Properties p = new Properties();
        try (InputStream in = new FileInputStream(f)) {
            p.load(in);
        } catch (IOException e) {
            throw new Stop(STOP, "Error", "Atlas: cannot read " + f + ": " + e.getMessage()
                    + "; re-import the instance from the pack's page");
        }
        return p;
    }

    static String required(Properties p, String key, File from) throws Stop {
        String v = p.getProperty(key);
        if (v == null || v.trim().isEmpty()) {
            throw new Stop(STOP, "Error", "Atlas: " + from + " has no `" + key + "`; re-import the instance from the pack's page");
        }
        return v.trim();
    }

    /** The channel naming rule of docs/FORMAT.md section 1. */
    static boolean validId(String s) {
        if (s.isEmpty() || s.length() > 64) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '-' || c == '_' || c == '.'));
            if (!ok) {
                return false;
            }
        }
        return true;
    }

    /** The first line of atlas/channel that is neither blank nor a `#` comment, or null. */
    static String channelFile(File f) throws IOException {
        if (!f.isFile()) {
            return null;
        }
        try (BufferedReader r = new BufferedReader(new InputStreamReader(new FileInputStream(f), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                String t = line.trim();
                if (!t.isEmpty() && !t.startsWith("#")) {
                    return t;
                }
            }
        }
        return null;
    }

    /** The channel to follow: ATLAS_CHANNEL, else atlas/channel, else the archive's default. */
    static String channel(File atlasDir, Properties props) throws IOException, Stop {
        String env = System.getenv("ATLAS_CHANNEL");
        String from;
        String c;
        if (env != null && !env.trim().isEmpty()) {
            c = env.trim();
            from = "the ATLAS_CHANNEL environment variable";
        } else {
            c = channelFile(new File(atlasDir, "channel"));
            from = new File(atlasDir, "channel").toString();
            if (c == null) {
                c = required(props, "channel", new File(atlasDir, "instance.properties"));
                from = "instance.properties";
            }
        }
        if (!validId(c)) {
            throw new Stop(STOP, "Error", "Atlas: `" + c + "` (from " + from + ") is not a channel name: use a-z, 0-9, '-', '_', '.'; "
                    + "the pack's page lists its channels: " + props.getProperty("page", "(no page)"));
        }
        return c;
    }

    static int channelCommand(String[] args) throws IOException, Stop {
        String instEnv = System.getenv("INST_DIR");
        File inst = new File(instEnv != null && !instEnv.isEmpty() ? instEnv : ".").getAbsoluteFile();
        File atlasDir = new File(inst, "atlas");
        File propsFile = new File(atlasDir, "instance.properties");
        if (!propsFile.isFile()) {
            throw new Stop(USAGE, "Error", "Atlas: " + propsFile + " not found: run this in the instance's folder "
                    + "(Prism Launcher: right-click the instance, Folder)");
        }
        Properties props = load(propsFile);
        String dflt = required(props, "channel", propsFile);
        File file = new File(atlasDir, "channel");
        if (args.length == 0) {
            String current = channelFile(file);
            System.out.println(current == null ? dflt + " (the instance's default)" : current + " (from " + file + "; default " + dflt + ")");
            return 0;
        }
        if (args.length != 1) {
            throw new Stop(USAGE, "Error", usage());
        }
        if (args[0].equals("--default")) {
            Files.deleteIfExists(file.toPath());
            System.out.println("following " + dflt + " (the instance's default) from the next launch");
            return 0;
        }
        String name = args[0].trim();
        if (!validId(name)) {
            throw new Stop(USAGE, "Error", "`" + name + "` is not a channel name: use a-z, 0-9, '-', '_', '.'");
        }
        File tmp = File.createTempFile(".channel-", ".tmp", atlasDir);
        try (OutputStream out = new FileOutputStream(tmp)) {
            out.write(("# The channel this instance follows (atlas-bootstrap.jar channel NAME | --default)\n" + name + "\n")
                    .getBytes(StandardCharsets.UTF_8));
        }
        move(tmp, file);
        System.out.println("following " + name + " from the next launch");
        return 0;
    }

    // ---- platform and cache -------------------------------------------------------

    /** The Rust target triples to try for this JVM's OS and architecture, best first. */
    static List<String> targets() throws Stop {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        boolean arm = arch.equals("aarch64") || arch.equals("arm64");
        boolean x64 = arch.equals("amd64") || arch.equals("x86_64");
        List<String> t = new ArrayList<String>();
        if (os.startsWith("windows")) {
            if (arm) {
                t.add("aarch64-pc-windows-msvc");
            }
            if (arm || x64) {
                t.add("x86_64-pc-windows-msvc"); // emulated on Windows on Arm
            }
        } else if (os.startsWith("mac") || os.startsWith("darwin")) {
            if (arm) {
                t.add("aarch64-apple-darwin");
            }
            if (arm || x64) {
                t.add("x86_64-apple-darwin"); // Rosetta 2 on Apple silicon
            }
        } else if (os.startsWith("linux")) {
            if (arm) {
                t.add("aarch64-unknown-linux-musl");
            } else if (x64) {
                t.add("x86_64-unknown-linux-musl");
            }
        }
        if (t.isEmpty()) {
            throw new Stop(STOP, "Error", "Atlas: no atlas-fetcher is built for " + os + " on " + arch
                    + "; Atlas instances run on Windows, macOS and Linux, x86_64 or aarch64");
        }
        return t;
    }

    static File cacheDir() {
        String explicit = System.getenv("ATLAS_BOOTSTRAP_CACHE");
        if (explicit != null && !explicit.isEmpty()) {
            return new File(explicit);
        }
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String home = System.getProperty("user.home", ".");
        if (os.startsWith("windows")) {
            String local = System.getenv("LOCALAPPDATA");
            return new File(new File(local != null && !local.isEmpty() ? local : home, "atlas"), "cache");
        }
        if (os.startsWith("mac")) {
            return new File(new File(new File(home, "Library"), "Caches"), "atlas");
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        return new File(xdg != null && !xdg.isEmpty() ? new File(xdg) : new File(home, ".cache"), "atlas");
    }

    // ---- hashing and downloading ----------------------------------------------------

    static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java has SHA-256", e);
        }
    }

    static String hex(byte[] b) {
        StringBuilder s = new StringBuilder(b.length * 2);
        for (byte x : b) {
            s.append(Character.forDigit((x >> 4) & 0xf, 16)).append(Character.forDigit(x & 0xf, 16));
        }
        return s.toString();
    }

    /** SHA-256 of a file and its size, or null when it cannot be read. */
    static String[] hashFile(File f) {
        MessageDigest md = sha256();
        long n = 0;
        byte[] buf = new byte[1 << 16];
        try (InputStream in = new FileInputStream(f)) {
            int r;
            while ((r = in.read(buf)) > 0) {
                md.update(buf, 0, r);
                n += r;
            }
        } catch (IOException e) {
            return null;
        }
        return new String[] {hex(md.digest()), Long.toString(n)};
    }

    static void move(File from, File to) throws IOException {
        try {
            Files.move(from.toPath(), to.toPath(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from.toPath(), to.toPath(), StandardCopyOption.REPLACE_EXISTING);
        }
    }

    static boolean certificatePathFailure(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String n = t.getClass().getName();
            if (n.endsWith("CertPathBuilderException") || n.endsWith("ValidatorException")
                    || n.endsWith("CertificateException") || String.valueOf(t.getMessage()).contains("PKIX")) {
                return true;
            }
        }
        return false;
    }

    static HttpURLConnection open(URL url, boolean trustAll) throws IOException {
        HttpURLConnection c = (HttpURLConnection) url.openConnection();
        c.setConnectTimeout(CONNECT_TIMEOUT_MS);
        c.setReadTimeout(READ_TIMEOUT_MS);
        c.setInstanceFollowRedirects(true);
        c.setRequestProperty("User-Agent", "atlas-bootstrap/" + VERSION);
        if (trustAll && c instanceof HttpsURLConnection) {
            // Only for a download whose SHA-256 and size are pinned: an old
            // Java 8 lacks today's root certificates; the pin, not TLS, decides.
            try {
                SSLContext ctx = SSLContext.getInstance("TLS");
                ctx.init(null, new TrustManager[] {new X509TrustManager() {
                    public void checkClientTrusted(X509Certificate[] chain, String type) {}

                    public void checkServerTrusted(X509Certificate[] chain, String type) {}

                    public X509Certificate[] getAcceptedIssuers() {
                        return new X509Certificate[0];
                    }
                }}, null);
                ((HttpsURLConnection) c).setSSLSocketFactory(ctx.getSocketFactory());
                ((HttpsURLConnection) c).setHostnameVerifier(new HostnameVerifier() {
                    public boolean verify(String host, SSLSession s) {
                        return true;
                    }
                });
            } catch (java.security.GeneralSecurityException e) {
                throw new IOException("cannot set up TLS: " + e, e);
            }
        }
        return c;
    }

    /**
     * Downloads `url` into `dest` (a new file), reading at most size + 1 bytes,
     * and returns its SHA-256 and size. Offline when the server cannot be reached.
     */
    static String[] download(URL url, File dest, long size, boolean trustAll) throws IOException, Stop {
        HttpURLConnection c = open(url, trustAll);
        int status;
        try {
            status = c.getResponseCode();
        } catch (SSLHandshakeException e) {
            throw e;
        } catch (IOException e) {
            throw new Offline("cannot reach " + url + " (" + e + ")", e);
        }
        if (status >= 500 || status == 408 || status == 429) {
            throw new Offline(url + " answered HTTP " + status, null);
        }
        if (status != 200) {
            throw new Stop(STOP, "Error", "Atlas: " + url + " answered HTTP " + status
                    + " for the pinned atlas-fetcher; the store no longer has it (an old instance after the"
                    + " store was cleaned up): re-import the instance from the pack's page, or tell the pack's author");
        }
        MessageDigest md = sha256();
        long n = 0;
        byte[] buf = new byte[1 << 16];
        try (InputStream in = c.getInputStream(); OutputStream out = new FileOutputStream(dest)) {
            int r;
            while ((r = in.read(buf)) > 0) {
                n += r;
                if (n > size) {
                    break; // more than pinned: refused below, without reading the rest
                }
                md.update(buf, 0, r);
                out.write(buf, 0, r);
            }
        } catch (IOException e) {
            throw new Offline("the download of " + url + " broke off (" + e + ")", e);
        }
        return new String[] {hex(md.digest()), Long.toString(n)};
    }

    /** The pinned fetcher, from the cache or downloaded into it; verified. */
    static File fetcher(File cache, String store, String target, String sha, long size) throws IOException, Stop {
        String name = target.contains("-windows-") ? "atlas-fetcher.exe" : "atlas-fetcher";
        File dir = new File(new File(cache, "fetcher"), sha);
        File bin = new File(dir, name);
        if (bin.isFile()) {
            return bin;
        }
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new Stop(STOP, "Error", "Atlas: cannot create the cache folder " + dir);
        }
        URL url = new URL(store + "blobs/sha256/" + sha.substring(0, 2) + "/" + sha);
        File tmp = File.createTempFile(".download-", ".tmp", dir);
        try {
            String[] got;
            try {
                got = download(url, tmp, size, false);
            } catch (SSLHandshakeException e) {
                if (!certificatePathFailure(e)) {
                    throw new Offline("cannot reach " + url + " (" + e + ")", e);
                }
                log("Warning", "Atlas: this Java does not trust " + url.getHost() + "'s certificate (an old Java 8); "
                        + "downloading the pinned atlas-fetcher anyway: its SHA-256 is checked before it runs");
                got = download(url, tmp, size, true);
            }
            if (!got[0].equals(sha) || Long.parseLong(got[1]) != size) {
                throw new Stop(STOP, "Error", "Atlas: refused the atlas-fetcher downloaded from " + url + ": it has SHA-256 "
                        + got[0] + " (" + got[1] + (Long.parseLong(got[1]) > size ? "+" : "") + " bytes), but the instance pins "
                        + sha + " (" + size + " bytes). Nothing was run and your installed build is unchanged; "
                        + "tell the pack's author (the store or the network altered the file)");
            }
            if (!tmp.setExecutable(true, false)) {
                log("Warning", "Atlas: could not mark " + tmp + " executable");
            }
            move(tmp, bin);
        } finally {
            Files.deleteIfExists(tmp.toPath());
        }
        return bin;
    }

    /** Deletes cached fetchers beyond the newest few (by modification time), keeping `inUse`. */
    static void pruneCache(File cache, File inUse) {
        File[] dirs = new File(cache, "fetcher").listFiles();
        if (dirs == null || dirs.length <= KEEP_CACHED) {
            return;
        }
        Arrays.sort(dirs, new Comparator<File>() {
            public int compare(File a, File b) {
                return Long.compare(b.lastModified(), a.lastModified());
            }
        });
        for (int i = KEEP_CACHED; i < dirs.length; i++) {
            if (dirs[i].equals(inUse.getParentFile())) {
                continue;
            }
            File[] files = dirs[i].listFiles();
            if (files != null) {
                for (File f : files) {
                    if (!f.delete()) {
                        return;
                    }
                }
            }
            if (!dirs[i].delete()) {
                return;
            }
        }
    }

    // ---- the pre-launch command -------------------------------------------------------

    static int preLaunch() throws IOException, Stop {
        String instDir = System.getenv("INST_DIR");
        String mcDir = System.getenv("INST_MC_DIR");
        if (instDir == null || instDir.isEmpty() || mcDir == null || mcDir.isEmpty()) {
            throw new Stop(USAGE, "Error", "Atlas: INST_DIR and INST_MC_DIR are not set, so no launcher started this; " + usage());
        }
        File inst = new File(instDir).getAbsoluteFile();
        File atlasDir = new File(inst, "atlas");
        File propsFile = new File(atlasDir, "instance.properties");
        Properties props = load(propsFile);
        String store = required(props, "store", propsFile);
        if (!store.endsWith("/")) {
            store = store + "/";
        }
        String pack = required(props, "pack", propsFile);
        String channel = channel(atlasDir, props);
        // Pins: those a verified pointer brought (atlas/fetcher.properties,
        // written by the fetcher), else the archive's.
        List<Properties> sources = new ArrayList<Properties>();
        File newer = new File(atlasDir, "fetcher.properties");
        if (newer.isFile()) {
            sources.add(load(newer));
        }
        sources.add(props);
        String target = null;
        String sha = null;
        long size = -1;
        search:
        for (Properties pins : sources) {
            for (String t : targets()) {
                String s = pins.getProperty("fetcher." + t + ".sha256");
                String z = pins.getProperty("fetcher." + t + ".size");
                if (s != null && z != null) {
                    target = t;
                    sha = s.trim().toLowerCase(Locale.ROOT);
                    try {
                        size = Long.parseLong(z.trim());
                    } catch (NumberFormatException e) {
                        size = -1;
                    }
                    break search;
                }
            }
        }
        if (target == null || sha.length() != 64 || size <= 0) {
            throw new Stop(STOP, "Error", "Atlas: the instance pins no atlas-fetcher for " + targets().get(0)
                    + "; ask the pack's author to publish with the player tools for every platform");
        }
        File cache = cacheDir();
        boolean installed = new File(new File(mcDir, ".atlas"), "install.json").isFile();
        File bin;
        try {
            bin = fetcher(cache, store, target, sha, size);
        } catch (Offline e) {
            if (installed) {
                log("Warning", "Atlas: " + e.getMessage() + "; starting with the installed build of " + pack);
                return 0;
            }
            throw new Stop(STOP, "Error", "Atlas: " + e.getMessage() + "; the first launch needs the internet to install " + pack);
        }
        // Hashed again right before it runs: the cache is only a cache.
        String[] now = hashFile(bin);
        if (now == null || !now[0].equals(sha) || Long.parseLong(now[1]) != size) {
            Files.deleteIfExists(bin.toPath());
            throw new Stop(STOP, "Error", "Atlas: the cached " + bin + " no longer matches its pin " + sha
                    + "; it was deleted and nothing was run: launch again to download it afresh");
        }
        if (!bin.setLastModified(System.currentTimeMillis())) {
            log("Debug", "Atlas: could not touch " + bin);
        }
        List<String> cmd = new ArrayList<String>();
        cmd.add(bin.getPath());
        cmd.addAll(Arrays.asList("sync", "--instance", inst.getPath(), "--before-launch",
                "--source", store, "--pack", pack, "--channel", channel));
        String root = props.getProperty("root");
        if (root != null && !root.trim().isEmpty()) {
            cmd.add("--root");
            cmd.add(new File(atlasDir, root.trim()).getPath());
        } else {
            for (String k : required(props, "key", propsFile).split(",")) {
                if (!k.trim().isEmpty()) {
                    cmd.add("--key");
                    cmd.add(k.trim());
                }
            }
        }
        ProcessBuilder pb = new ProcessBuilder(cmd).inheritIO().directory(new File(mcDir));
        Map<String, String> env = pb.environment();
        // The command line above is the whole configuration: settings a
        // player's environment may hold for atlas-fetcher elsewhere must not
        // change what this instance trusts or where it installs.
        for (Iterator<String> it = env.keySet().iterator(); it.hasNext();) {
            if (it.next().startsWith("ATLAS_")) {
                it.remove();
            }
        }
        env.put("ATLAS_BOOTSTRAP_CACHE", cache.getPath());
        env.put("ATLAS_BOOTSTRAP_TARGET", target);
        env.put("ATLAS_BOOTSTRAP_SHA256", sha);
        log("Info", "Atlas: checking " + pack + " channel " + channel + " with atlas-fetcher " + sha.substring(0, 12) + " (" + target + ")");
        int code;
        try {
            code = pb.start().waitFor();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Stop(STOP, "Error", "Atlas: interrupted");
        }
        if (code == 0) {
            pruneCache(cache, bin);
        }
        return code;
    }
}
