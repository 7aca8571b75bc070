import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.jdbc.JdbcCatalog;
import org.apache.iceberg.rest.RESTCatalogAdapter;
import org.apache.iceberg.rest.RESTCatalogServlet;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

/**
 * The Iceberg REST catalog (iceberg-core's RESTCatalogAdapter and RESTCatalogServlet) on one address.
 *
 * <p>Apache's RESTCatalogServer fixture binds every interface, logs every property (the S3 secret
 * included) and needs Hadoop on the classpath; cdcstack's services listen on loopback only. Config
 * follows the fixture's convention: CATALOG_ variables, prefix dropped, "__" to "-", "_" to ".",
 * lower-cased (CATALOG_S3_PATH__STYLE__ACCESS is s3.path-style-access).
 */
public final class LocalRestCatalogServer {
  private LocalRestCatalogServer() {}

  static Map<String, String> propertiesFromEnvironment(Map<String, String> environment) {
    Map<String, String> properties = new HashMap<>();
    environment.forEach((key, value) -> {
      if (key.startsWith("CATALOG_")) {
        String name = key.substring("CATALOG_".length()).replace("__", "-").replace("_", ".");
        properties.put(name.toLowerCase(Locale.ROOT), value);
      }
    });
    properties.putIfAbsent("catalog-impl", JdbcCatalog.class.getName());
    properties.putIfAbsent("jdbc.schema-version", "V1");
    return properties;
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> properties = propertiesFromEnvironment(System.getenv());
    String host = properties.getOrDefault("rest.host", "127.0.0.1");
    int port = Integer.parseInt(properties.getOrDefault("rest.port", "8181"));
    Catalog catalog = CatalogUtil.buildIcebergCatalog(properties.getOrDefault("catalog.name", "cdcstack"), properties, null);
    RESTCatalogAdapter adapter = new RESTCatalogAdapter(catalog);

    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(new RESTCatalogServlet(adapter)), "/*");
    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost(host);
    connector.setPort(port);
    server.addConnector(connector);
    server.setHandler(context);
    server.setStopAtShutdown(true);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try {
        adapter.close();
        if (catalog instanceof AutoCloseable closeable) {
          closeable.close();
        }
      } catch (Exception error) {
        System.err.println("closing the catalog failed: " + error);
      }
    }));
    server.start();
    System.out.println("iceberg rest catalog listening on http://" + host + ":" + port + "/");
    server.join();
  }
}
