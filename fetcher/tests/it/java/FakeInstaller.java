// A stand-in for the Forge, NeoForge, Quilt and Fabric installers in the
// fetcher's provisioning tests. It reads /fake-installer.properties from its
// own jar and, run the way Atlas runs the real installers, writes the files
// they write (an args file and a library jar, a launcher jar, or a legacy
// server jar); with wrong arguments it fails like they do. Properties:
//   mode        forge (--installServer DIR), quilt (install server MC LOADER --install-dir=DIR)
//               or fabric (server -dir DIR -mcversion MC -loader LOADER [-metaurl URL/], parsed as
//               fabric-installer's ArgumentParser does; writes fabric-server-launch.jar, whose
//               Main-Class is the FakeFabricLauncher copied from this jar, and a loader library)
//   args_dir    forge: where unix_args.txt and win_args.txt go, e.g. libraries/net/neoforged/neoforge/21.1.1
//   legacy_jar  forge: write this server jar instead of an args file (Forge before 1.17)
//   minecraft   quilt: the Minecraft version it must be asked for
//   loader      quilt: the loader version it must be asked for
//   fail        true: write a partial file, then exit 3
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;

public class FakeInstaller {
    static void write(Path dir, String rel, String text) throws Exception {
        Path p = dir.resolve(rel);
        Files.createDirectories(p.getParent());
        Files.write(p, text.getBytes(StandardCharsets.UTF_8));
    }

    static void jar(Path dir, String rel) throws Exception {
        write(dir, rel, "PK\u0003\u0004 stand-in jar " + rel);
    }

    static int usage(String why) {
        System.err.println("error: " + why);
        return 2;
    }

    /** fabric-installer's ArgumentParser: the command, then `-key value` (or `-flag`). */
    static Map<String, String> fabricArgs(String[] args, String[] command) {
        Map<String, String> map = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].startsWith("-")) {
                String key = args[i].substring(1);
                String value = "";
                if (i + 1 < args.length && !args[i + 1].startsWith("-")) {
                    value = args[++i];
                }
                if (map.containsKey(key)) throw new IllegalArgumentException("Argument " + key + " already passed");
                map.put(key, value);
            } else if (command[0] == null) {
                command[0] = args[i];
            }
        }
        return map;
    }

    /** The launch jar `fabric-installer server` writes, with the stand-in launcher as Main-Class. */
    static void launchJar(Path out) throws Exception {
        Manifest m = new Manifest();
        m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        m.getMainAttributes().put(Attributes.Name.MAIN_CLASS, "FakeFabricLauncher");
        try (OutputStream os = Files.newOutputStream(out);
                JarOutputStream jar = new JarOutputStream(os, m);
                InputStream cls = FakeInstaller.class.getResourceAsStream("/FakeFabricLauncher.class")) {
            if (cls == null) throw new IllegalStateException("FakeFabricLauncher.class is not in the installer jar");
            jar.putNextEntry(new JarEntry("FakeFabricLauncher.class"));
            cls.transferTo(jar);
            jar.closeEntry();
        }
    }

    static int fabric(Properties p, String[] args) throws Exception {
        String[] command = new String[1];
        Map<String, String> a = fabricArgs(args, command);
        if (!"server".equals(command[0])) return usage("No handler found for " + command[0]);
        Path dir = Paths.get(a.getOrDefault("dir", ".")).toAbsolutePath().normalize();
        if (!Files.isDirectory(dir)) return usage("Server directory not found at " + dir + " or not a directory");
        if (!p.getProperty("minecraft").equals(a.get("mcversion")) || !p.getProperty("loader").equals(a.get("loader"))) {
            return usage("asked for " + a.get("mcversion") + " " + a.get("loader"));
        }
        String meta = a.get("metaurl");
        if (meta != null && !meta.endsWith("/")) return usage("-metaurl must end with /");
        if (p.getProperty("fail", "false").equals("true")) {
            write(dir, "libraries/partial.txt", "half an install");
            System.err.println("Failed to download a library: connection reset");
            return 3;
        }
        String l = p.getProperty("loader");
        jar(dir, "libraries/net/fabricmc/fabric-loader/" + l + "/fabric-loader-" + l + ".jar");
        launchJar(dir.resolve("fabric-server-launch.jar"));
        return 0;
    }

    static int run(String[] args) throws Exception {
        Properties p = new Properties();
        try (InputStream in = FakeInstaller.class.getResourceAsStream("/fake-installer.properties")) {
            if (in == null) return usage("no fake-installer.properties in the jar");
            p.load(in);
        }
        Path dir;
        if (p.getProperty("mode", "forge").equals("fabric")) {
            return fabric(p, args);
        }
        if (p.getProperty("mode", "forge").equals("quilt")) {
            if (args.length != 5 || !args[0].equals("install") || !args[1].equals("server")
                    || !args[4].startsWith("--install-dir=")) {
                return usage("usage: install server <minecraft> <loader> --install-dir=<dir>");
            }
            if (!args[2].equals(p.getProperty("minecraft")) || !args[3].equals(p.getProperty("loader"))) {
                return usage("asked for " + args[2] + " " + args[3]);
            }
            dir = Paths.get(args[4].substring("--install-dir=".length()));
        } else {
            if (args.length < 1 || args.length > 2 || !args[0].equals("--installServer")) {
                return usage("usage: --installServer [dir]");
            }
            dir = args.length == 2 ? Paths.get(args[1]) : Paths.get(".");
        }
        System.out.println("installing into " + dir);
        if (p.getProperty("fail", "false").equals("true")) {
            write(dir, "libraries/partial.txt", "half an install");
            System.err.println("Failed to download a library: connection reset");
            return 3;
        }
        if (p.getProperty("mode", "forge").equals("quilt")) {
            jar(dir, "quilt-server-launch.jar");
            String l = p.getProperty("loader");
            jar(dir, "libraries/org/quiltmc/quilt-loader/" + l + "/quilt-loader-" + l + ".jar");
            return 0;
        }
        jar(dir, "libraries/net/example/fake/1.0/fake-1.0.jar");
        write(dir, "user_jvm_args.txt", "# installer default\n");
        String legacy = p.getProperty("legacy_jar");
        if (legacy != null) {
            jar(dir, legacy);
            return 0;
        }
        String argsDir = p.getProperty("args_dir");
        String line = "-p libraries/net/example/fake/1.0/fake-1.0.jar --launchTarget forgeserver\n";
        write(dir, argsDir + "/unix_args.txt", line);
        write(dir, argsDir + "/win_args.txt", line);
        write(dir, "run.sh", "java @user_jvm_args.txt @" + argsDir + "/unix_args.txt \"$@\"\n");
        return 0;
    }

    public static void main(String[] args) throws Exception {
        System.exit(run(args));
    }
}
