// A MongoDB-wire server for the local stack: de.bwaldvogel:mongo-java-server reporting MongoDB 6.0
// (wire version 17), because pymongo 4.20 refuses the library's own default (wire version 8).
// Run as a single source file (Java 11+):  java -cp 'LIB/*' LocalMongo.java HOST PORT [H2_FILE]
// Without H2_FILE the data lives in memory and is gone when the process stops.
import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import java.util.List;
import java.util.concurrent.CountDownLatch;

public final class LocalMongo {
    private static final MongoVersion MONGO_6_0 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(6, 0, 0);
        }

        @Override
        public String toVersionString() {
            return "6.0.0";
        }

        @Override
        public int getWireVersion() {
            return 17;
        }
    };

    public static void main(String[] args) throws Exception {
        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: LocalMongo HOST PORT [H2_FILE]");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        MongoBackend backend = args.length == 3 ? new H2Backend(args[2]) : new MemoryBackend();
        backend.version(MONGO_6_0);
        MongoServer server = new MongoServer(backend);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            stopped.countDown();
        }));
        server.bind(host, port);
        System.out.println("LocalMongo listening on " + host + ":" + port
                + (args.length == 3 ? " (H2 file " + args[2] + ")" : " (in memory)"));
        stopped.await();
    }
}
