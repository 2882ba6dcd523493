// A stand-in for Fabric's two server launchers, finding the Minecraft server
// jar exactly as the real ones do; instead of starting Minecraft it prints
// the jar it would run ("game jar: <path> sha1 <hex>") and exits 0.
//
// - With /install.properties in its jar, it is fabric-installer's
//   ServerLauncher (the jar Fabric meta serves at
//   /v2/versions/loader/<mc>/<loader>/<installer>/server/jar; FabricMC/
//   fabric-installer src/main/java/net/fabricmc/installer/ServerLauncher.java):
//   the game jar is -Dfabric.installer.server.gameJar, else
//   .fabric/server/<game-version>-server.jar, downloaded from Mojang when
//   missing (here: fetched from the stand-in-only `mojang-manifest` URL,
//   so the download shows in the fake's request log).
// - Without it, it is fabric-loader's FabricServerLauncher (the
//   fabric-server-launch.jar that `fabric-installer server` writes;
//   FabricMC/fabric-loader src/main/java/net/fabricmc/loader/impl/launch/
//   server/FabricServerLauncher.java): the game jar is -Dfabric.gameJarPath,
//   else `serverJar` of fabric-server-launcher.properties, which it writes
//   with serverJar=server.jar when the key is absent; a missing jar is fatal.
import java.io.InputStream;
import java.io.Reader;
import java.io.Writer;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.util.Properties;

public class FakeFabricLauncher {
    static String sha1(Path p) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-1");
        byte[] d = md.digest(Files.readAllBytes(p));
        StringBuilder sb = new StringBuilder();
        for (byte b : d) sb.append(String.format("%02x", b));
        return sb.toString();
    }

    static Path metaLauncher(Properties install) throws Exception {
        String gameVersion = install.getProperty("game-version");
        String custom = System.getProperty("fabric.installer.server.gameJar", null);
        Path jar = custom == null
                ? Paths.get(".fabric", "server", gameVersion + "-server.jar")
                : Paths.get(custom);
        if (!Files.exists(jar)) {
            System.out.println("Downloading the Minecraft server jar");
            Files.createDirectories(jar.toAbsolutePath().getParent());
            try (InputStream in = new URL(install.getProperty("mojang-manifest")).openStream()) {
                Files.copy(in, jar, StandardCopyOption.REPLACE_EXISTING);
            }
        }
        return jar;
    }

    static Path loaderLauncher() throws Exception {
        String path = System.getProperty("fabric.gameJarPath");
        if (path == null) {
            Path propertiesFile = Paths.get("fabric-server-launcher.properties");
            Properties properties = new Properties();
            if (Files.exists(propertiesFile)) {
                try (Reader reader = Files.newBufferedReader(propertiesFile)) {
                    properties.load(reader);
                }
            }
            if (!properties.containsKey("serverJar")) {
                properties.put("serverJar", "server.jar");
                try (Writer writer = Files.newBufferedWriter(propertiesFile)) {
                    properties.store(writer, null);
                }
            }
            path = (String) properties.get("serverJar");
        }
        Path jar = Paths.get(path);
        if (!Files.exists(jar)) {
            System.err.println("The Minecraft server .JAR is missing (" + jar + ")!");
            System.exit(1);
        }
        return jar;
    }

    public static void main(String[] args) throws Exception {
        Path jar;
        try (InputStream in = FakeFabricLauncher.class.getResourceAsStream("/install.properties")) {
            if (in != null) {
                Properties install = new Properties();
                install.load(in);
                jar = metaLauncher(install);
            } else {
                jar = loaderLauncher();
            }
        }
        System.out.println("game jar: " + jar + " sha1 " + sha1(jar));
    }
}
