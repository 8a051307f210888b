package main

// The image is FROM scratch (no /usr/share/zoneinfo): the parsers'
// time_zone option needs the zone database built in (about 450 KB).
import _ "time/tzdata"
