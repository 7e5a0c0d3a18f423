#!/usr/bin/env bash
# Fetches Java artifacts from Maven Central with Maven itself:
#   - the Apache Kafka broker (KRaft) + CLI tools + log4j2 into .cache/kafka-<v>/libs
#   - the Flink SQL Kafka connector fat jar into .cache/flink-connector-<v>/
source "$(dirname "$0")/lib.sh"

command -v mvn >/dev/null || die "maven is not installed: apt-get install maven"
command -v java >/dev/null || die "java is not installed: apt-get install openjdk-17-jdk-headless"

KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
CONNECTOR_HOME="$CACHE/flink-connector-kafka-$FLINK_KAFKA_CONNECTOR_VERSION"

# Maven's output only matters when it fails.
quiet() {
  local out
  out=$(mktemp)
  "$1" -B -q "${@:2}" >"$out" 2>&1 || { cat "$out" >&2; rm -f "$out"; die "$1 failed"; }
  rm -f "$out"
}

# A throwaway pom whose only purpose is `dependency:copy-dependencies`: the broker's
# whole runtime class path lands in one folder (java -cp 'libs/*' kafka.Kafka).
install_kafka() {
  local work="$CACHE/src/kafka-pom-$KAFKA_VERSION"
  mkdir -p "$work" && cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.qarun</groupId><artifactId>kafka-classpath</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$KAFKA_SCALA_VERSION</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  log "fetching Kafka $KAFKA_VERSION jars with maven"
  rm -rf "$KAFKA_HOME/libs"
  quiet mvn -f "$work/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs"
  # slf4j must bind to exactly one backend: log4j2.
  rm -f "$KAFKA_HOME"/libs/slf4j-reload4j-*.jar "$KAFKA_HOME"/libs/reload4j-*.jar
}

install_connector() {
  log "fetching flink-sql-connector-kafka $FLINK_KAFKA_CONNECTOR_VERSION with maven"
  mkdir -p "$CONNECTOR_HOME"
  quiet mvn dependency:copy \
    -Dartifact="org.apache.flink:flink-sql-connector-kafka:$FLINK_KAFKA_CONNECTOR_VERSION" \
    -DoutputDirectory="$CONNECTOR_HOME"
}

once "$KAFKA_HOME/.done" install_kafka
once "$CONNECTOR_HOME/.done" install_connector
# Relative links: a Docker build context (the repository root, when .cache is in it)
# can follow them; absolute ones point outside the context.
ln -sfn "$(basename "$KAFKA_HOME")" "$CACHE/kafka"
ln -sfn "$(basename "$CONNECTOR_HOME")" "$CACHE/flink-connector-kafka"
log "jars ready: $KAFKA_HOME/libs, $CONNECTOR_HOME"
