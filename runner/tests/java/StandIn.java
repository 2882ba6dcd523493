// A stand-in Minecraft server on a real JVM, with no dependencies: it reads
// server.properties (server-port, level-name), prints Minecraft's start lines,
// answers Server List Ping (status and ping), writes <level-name>/level.dat,
// and stops on the console command `stop`, saving first. Tests build it with
// javac and jar (runner/tests/it/common/mod.rs) and run it with `java -jar`.

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.Reader;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.Properties;

public final class StandIn {
    private static final String VERSION = "1.21.1";
    private static final int PROTOCOL = 767;
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss");
    private static int saves = 0;

    public static void main(String[] args) throws Exception {
        long started = System.nanoTime();
        log("Starting minecraft server version " + VERSION);
        Properties props = new Properties();
        Path file = Paths.get("server.properties");
        if (Files.exists(file)) {
            try (Reader r = Files.newBufferedReader(file, StandardCharsets.ISO_8859_1)) {
                props.load(r);
            }
        }
        int port = Integer.parseInt(props.getProperty("server-port", "25565").trim());
        String level = props.getProperty("level-name", "world").trim();
        int maxPlayers = Integer.parseInt(props.getProperty("max-players", "20").trim());
        log("Starting Minecraft server on *:" + port);
        ServerSocket server = new ServerSocket();
        server.setReuseAddress(true);
        server.bind(new InetSocketAddress(port));
        String status = "{\"version\":{\"name\":\"" + VERSION + "\",\"protocol\":" + PROTOCOL + "},"
                + "\"players\":{\"max\":" + maxPlayers + ",\"online\":0},"
                + "\"description\":{\"text\":\"A JVM stand-in\"}}";
        Thread net = new Thread(() -> serve(server, status), "Server Listener");
        net.setDaemon(true);
        net.start();

        log("Preparing level \"" + level + "\"");
        save(level);
        log(String.format("Done (%.3fs)! For help, type \"help\"", (System.nanoTime() - started) / 1e9));

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.trim().equals("stop")) {
                log("Stopping the server");
                log("Stopping server");
                log("Saving worlds");
                save(level);
                log("ThreadedAnvilChunkStorage: All dimensions are saved");
                System.exit(0);
            } else if (!line.isBlank()) {
                log("Unknown or incomplete command, see below for error");
            }
        }
        // End of input: keep running, like Minecraft, until killed.
        Thread.currentThread().join();
    }

    private static synchronized void log(String msg) {
        System.out.println("[" + LocalTime.now().format(TIME) + "] [Server thread/INFO]: " + msg);
        System.out.flush();
    }

    private static void save(String level) throws IOException {
        saves++;
        Path dir = Paths.get(level);
        Files.createDirectories(dir);
        String text = "jvm-standin level.dat\nLevelName=" + level + "\nsaves=" + saves + "\n";
        Files.write(dir.resolve("level.dat"), text.getBytes(StandardCharsets.UTF_8));
    }

    private static void serve(ServerSocket server, String status) {
        while (true) {
            try (Socket s = server.accept()) {
                s.setSoTimeout(10_000);
                ping(new DataInputStream(s.getInputStream()), s.getOutputStream(), status);
            } catch (IOException e) {
                // One bad client does not stop the listener.
            }
        }
    }

    /** Server List Ping: handshake, status request → JSON, ping → pong. */
    private static void ping(DataInputStream in, OutputStream out, String status) throws IOException {
        DataInputStream hs = packet(in);
        if (readVarInt(hs) != 0x00) return;
        readVarInt(hs); // protocol version
        hs.skipBytes(readVarInt(hs)); // host
        hs.readUnsignedShort(); // port
        if (readVarInt(hs) != 1) return; // only status
        while (true) {
            DataInputStream p = packet(in);
            int id = readVarInt(p);
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            writeVarInt(body, id);
            if (id == 0x00) {
                byte[] json = status.getBytes(StandardCharsets.UTF_8);
                writeVarInt(body, json.length);
                body.write(json);
            } else if (id == 0x01) {
                body.write(p.readNBytes(8));
            } else {
                return;
            }
            ByteArrayOutputStream frame = new ByteArrayOutputStream();
            writeVarInt(frame, body.size());
            body.writeTo(frame);
            out.write(frame.toByteArray());
            out.flush();
            if (id == 0x01) return;
        }
    }

    private static DataInputStream packet(DataInputStream in) throws IOException {
        int len = readVarInt(in);
        if (len < 1 || len > 4096) throw new IOException("bad packet length " + len);
        byte[] data = new byte[len];
        in.readFully(data);
        return new DataInputStream(new java.io.ByteArrayInputStream(data));
    }

    private static int readVarInt(DataInputStream in) throws IOException {
        int value = 0;
        for (int i = 0; i < 5; i++) {
            int b = in.readUnsignedByte();
            value |= (b & 0x7f) << (7 * i);
            if ((b & 0x80) == 0) return value;
        }
        throw new IOException("VarInt longer than 5 bytes");
    }

    private static void writeVarInt(ByteArrayOutputStream out, int value) {
        while ((value & ~0x7f) != 0) {
            out.write((value & 0x7f) | 0x80);
            value >>>= 7;
        }
        out.write(value);
    }
}
