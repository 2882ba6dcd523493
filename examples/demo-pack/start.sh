#!/bin/sh
# Starts the demo server (atlas-runnerd does this for you).
exec java -Xmx2G -jar fabric-server-launch.jar nogui
