# Metadata helpers of the minstack test image, sourced by /init.
#
# Reads the instance's hostname and SSH public keys from the metadata service
# (OpenStack JSON first, EC2 paths as a fallback) or from a config drive.
# Each source leaves two files in the output directory: "hostname" (one line)
# and "keys" (one public key per line).  POSIX sh + sed/awk only, so the unit
# tests can run these functions under the host's sh.

MD_URL=${MD_URL:-http://169.254.169.254}
MD_TIMEOUT=${MD_TIMEOUT:-5}
MD_SLEEP=${MD_SLEEP:-2}

# GET one metadata path into a file.  busybox-static's `wget -T` segfaults,
# so the deadline comes from timeout(1) instead.
md_get() {
    timeout "$MD_TIMEOUT" wget -q -O "$2" "$MD_URL$1" 2>/dev/null && [ -s "$2" ]
}

# The JSON document as one line (sed works line by line).
json_one_line() {
    tr -d '\n' < "$1"
    echo
}

# The top-level "hostname" string of an OpenStack meta_data.json.
json_hostname() {
    json_one_line "$1" |
        sed -n 's/.*"hostname"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p'
}

# Each value of the "public_keys" object, one per line.  Key material never
# contains quotes or braces, so splitting the object's body on '"' puts the
# values in every 4th field.  Nova ends each key with an escaped newline.
json_public_keys() {
    json_one_line "$1" |
        sed -n 's/.*"public_keys"[[:space:]]*:[[:space:]]*{\([^}]*\)}.*/\1/p' |
        awk -F'"' '{ for (i = 4; i <= NF; i += 4) print $i }' |
        sed 's/\\n$//; s/\\n/ /g; s#\\/#/#g'
}

# Split an OpenStack meta_data.json into the "hostname" and "keys" files.
md_from_json() {
    json_hostname "$1" > "$2/hostname"
    json_public_keys "$1" > "$2/keys"
    [ -s "$2/hostname" ]
}

# One attempt at the metadata service: the OpenStack path, then EC2's.
md_fetch_once() {
    if md_get /openstack/latest/meta_data.json "$1/meta_data.json"; then
        md_from_json "$1/meta_data.json" "$1" && return 0
    fi
    if md_get /latest/meta-data/hostname "$1/hostname"; then
        md_get /latest/meta-data/public-keys/0/openssh-key "$1/keys" ||
            : > "$1/keys"
        return 0
    fi
    return 1
}

# Retry the metadata service: $1 = output dir, $2 = attempts.  OVN's metadata
# agent can lag the VM's boot by a few seconds, hence the retries.
md_fetch() {
    n=0
    while [ "$n" -lt "$2" ]; do
        n=$((n + 1))
        if md_fetch_once "$1"; then
            echo "metadata: service answered (attempt $n)"
            return 0
        fi
        echo "metadata: service not answering (attempt $n/$2)"
        sleep "$MD_SLEEP"
    done
    return 1
}

# The config drive's device: Nova labels it config-2 (iso9660 on an IDE
# cdrom for machine type pc, or vfat on a disk, where the label may read back
# upper-case).  findfs needs the device nodes to exist already.
cd_find() {
    findfs LABEL=config-2 2>/dev/null || findfs LABEL=CONFIG-2 2>/dev/null
}

# Read hostname and keys from a config drive: $1 = device, $2 = output dir.
cd_read() {
    mkdir -p /mnt/config
    mount -o ro "$1" /mnt/config || return 1
    rc=1
    if [ -s /mnt/config/openstack/latest/meta_data.json ]; then
        cp /mnt/config/openstack/latest/meta_data.json "$2/meta_data.json"
        md_from_json "$2/meta_data.json" "$2" && rc=0
    fi
    umount /mnt/config
    return $rc
}
