#!/usr/bin/python3
"""A file system that forgets what was not synced: the power-loss test's disk.

Usage: powercut_fs.py MOUNTPOINT IMAGE

Everything lives in memory, twice: as programs see it now, and as it would be found after a
power cut. File data becomes durable only by fsync/fdatasync of that file; a name (a create,
rename, unlink, mkdir) only by fsync of the directory that holds it — the strictest reading of
POSIX, and what careful storage code must assume (LazyFS works the same way). On SIGUSR1 (the
power cut) the durable view is written to IMAGE and the process exits at once, without flushing
anything else; the next instance mounts IMAGE. Unmounting the dead mount is the caller's job
(umount -l). A file whose name is durable but whose data never was is found empty.

Needs python3-pyfuse3 (Debian) and /dev/fuse; run as root.
"""

import errno
import os
import pickle
import signal
import stat
import sys
import time

import pyfuse3
import trio


class Node:
    __slots__ = ("ino", "mode", "uid", "gid", "rdev", "mtime_ns", "data", "durable_data", "children",
                 "durable_children", "target")

    def __init__(self, ino, mode, uid=0, gid=0, rdev=0):
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.mtime_ns = time.time_ns()
        self.data = bytearray()
        self.durable_data = b""
        self.children = {} if stat.S_ISDIR(mode) else None
        self.durable_children = {} if stat.S_ISDIR(mode) else None
        self.target = b""


class PowerCutFS(pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self, image):
        super().__init__()
        self.image = image
        self.nodes = {}
        self.next_ino = pyfuse3.ROOT_INODE + 1
        self.handles = {}
        self.next_fh = 1
        self.nodes[pyfuse3.ROOT_INODE] = Node(pyfuse3.ROOT_INODE, stat.S_IFDIR | 0o755)
        if os.path.exists(image):
            with open(image, "rb") as f:
                self.restore(pickle.load(f))

    # -- the power cut -------------------------------------------------------------------------

    def durable_tree(self, node):
        """The node as found after a power cut: durable names, durable data."""
        entry = {"mode": node.mode, "uid": node.uid, "gid": node.gid, "rdev": node.rdev,
                 "data": bytes(node.durable_data), "target": node.target}
        if node.durable_children is not None:
            entry["children"] = {name: self.durable_tree(self.nodes[ino])
                                 for name, ino in node.durable_children.items() if ino in self.nodes}
        return entry

    def restore(self, tree, node=None):
        node = node or self.nodes[pyfuse3.ROOT_INODE]
        node.mode, node.uid, node.gid = tree["mode"], tree["uid"], tree["gid"]
        for name, child_tree in tree.get("children", {}).items():
            child = self.new_node(child_tree["mode"], child_tree["uid"], child_tree["gid"], child_tree["rdev"])
            child.data = bytearray(child_tree["data"])
            child.durable_data = child_tree["data"]
            child.target = child_tree["target"]
            node.children[name] = child.ino
            node.durable_children[name] = child.ino
            self.restore(child_tree, child)

    def power_cut(self, *_):
        tree = self.durable_tree(self.nodes[pyfuse3.ROOT_INODE])
        temporary = self.image + ".tmp"
        with open(temporary, "wb") as f:
            pickle.dump(tree, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(temporary, self.image)
        os._exit(0)

    # -- helpers -------------------------------------------------------------------------------

    def new_node(self, mode, uid=0, gid=0, rdev=0):
        node = Node(self.next_ino, mode, uid, gid, rdev)
        self.nodes[node.ino] = node
        self.next_ino += 1
        return node

    def node(self, ino):
        try:
            return self.nodes[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT)

    def directory(self, ino):
        node = self.node(ino)
        if node.children is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return node

    def attributes(self, node):
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = node.ino
        entry.generation = 0
        entry.entry_timeout = 0
        entry.attr_timeout = 0
        entry.st_mode = node.mode
        entry.st_nlink = 2 if node.children is not None else 1
        entry.st_uid = node.uid
        entry.st_gid = node.gid
        entry.st_rdev = node.rdev
        entry.st_size = len(node.target) if stat.S_ISLNK(node.mode) else len(node.data)
        entry.st_blksize = 4096
        entry.st_blocks = (entry.st_size + 511) // 512
        entry.st_atime_ns = entry.st_mtime_ns = entry.st_ctime_ns = node.mtime_ns
        return entry

    def add(self, parent_ino, name, mode, ctx, rdev=0):
        parent = self.directory(parent_ino)
        if name in parent.children:
            raise pyfuse3.FUSEError(errno.EEXIST)
        node = self.new_node(mode, ctx.uid, ctx.gid, rdev)
        parent.children[name] = node.ino
        parent.mtime_ns = time.time_ns()
        return node

    # -- operations ----------------------------------------------------------------------------

    async def lookup(self, parent_inode, name, ctx=None):
        parent = self.directory(parent_inode)
        if name == b".":
            return self.attributes(parent)
        if name == b"..":
            return self.attributes(parent)  # good enough: nothing here walks up
        ino = parent.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.attributes(self.nodes[ino])

    async def getattr(self, inode, ctx=None):
        return self.attributes(self.node(inode))

    async def setattr(self, inode, attr, fields, fh, ctx):
        node = self.node(inode)
        if fields.update_size:
            size = attr.st_size
            if size < len(node.data):
                del node.data[size:]
            else:
                node.data.extend(b"\0" * (size - len(node.data)))
        if fields.update_mode:
            node.mode = (node.mode & ~0o7777) | (attr.st_mode & 0o7777)
        if fields.update_uid:
            node.uid = attr.st_uid
        if fields.update_gid:
            node.gid = attr.st_gid
        if fields.update_mtime:
            node.mtime_ns = attr.st_mtime_ns
        return self.attributes(node)

    async def readlink(self, inode, ctx):
        return self.node(inode).target

    async def symlink(self, parent_inode, name, target, ctx):
        node = self.add(parent_inode, name, stat.S_IFLNK | 0o777, ctx)
        node.target = target
        return self.attributes(node)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        return self.attributes(self.add(parent_inode, name, mode, ctx, rdev))

    async def mkdir(self, parent_inode, name, mode, ctx):
        return self.attributes(self.add(parent_inode, name, stat.S_IFDIR | (mode & 0o7777), ctx))

    async def create(self, parent_inode, name, mode, flags, ctx):
        node = self.add(parent_inode, name, stat.S_IFREG | (mode & 0o7777), ctx)
        return (await self.open(node.ino, flags, ctx), self.attributes(node))

    async def unlink(self, parent_inode, name, ctx):
        parent = self.directory(parent_inode)
        ino = parent.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if self.nodes[ino].children is not None:
            raise pyfuse3.FUSEError(errno.EISDIR)
        del parent.children[name]
        parent.mtime_ns = time.time_ns()

    async def rmdir(self, parent_inode, name, ctx):
        parent = self.directory(parent_inode)
        ino = parent.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if self.directory(ino).children:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        del parent.children[name]

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old = self.directory(parent_inode_old)
        new = self.directory(parent_inode_new)
        ino = old.children.get(name_old)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if flags & pyfuse3.RENAME_NOREPLACE and name_new in new.children:
            raise pyfuse3.FUSEError(errno.EEXIST)
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        replaced = new.children.get(name_new)
        if replaced is not None and self.nodes[replaced].children:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        del old.children[name_old]
        new.children[name_new] = ino
        old.mtime_ns = new.mtime_ns = time.time_ns()

    async def link(self, inode, new_parent_inode, new_name, ctx):
        # A second name for a file: like any name, durable once its directory is fsync'd.
        node = self.node(inode)
        if node.children is not None:
            raise pyfuse3.FUSEError(errno.EPERM)
        parent = self.directory(new_parent_inode)
        if new_name in parent.children:
            raise pyfuse3.FUSEError(errno.EEXIST)
        parent.children[new_name] = inode
        parent.mtime_ns = time.time_ns()
        return self.attributes(node)

    async def open(self, inode, flags, ctx):
        node = self.node(inode)
        if flags & os.O_TRUNC:
            node.data = bytearray()
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = node.ino
        # Page cache on (SQLite maps its WAL index); a remount after each cut starts it empty.
        return pyfuse3.FileInfo(fh=fh, direct_io=False, keep_cache=False)

    async def read(self, fh, off, size):
        node = self.nodes[self.handles[fh]]
        return bytes(node.data[off:off + size])

    async def write(self, fh, off, buf):
        node = self.nodes[self.handles[fh]]
        if off > len(node.data):
            node.data.extend(b"\0" * (off - len(node.data)))
        node.data[off:off + len(buf)] = buf
        node.mtime_ns = time.time_ns()
        return len(buf)

    async def flush(self, fh):
        pass  # close(2): not a sync

    async def release(self, fh):
        self.handles.pop(fh, None)

    async def fsync(self, fh, datasync):
        node = self.nodes[self.handles[fh]]
        node.durable_data = bytes(node.data)

    async def opendir(self, inode, ctx):
        self.directory(inode)
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = inode
        return fh

    async def readdir(self, fh, start_id, token):
        node = self.nodes[self.handles[fh]]
        names = sorted(node.children)
        for index in range(start_id, len(names)):
            child = self.nodes[node.children[names[index]]]
            if not pyfuse3.readdir_reply(token, names[index], self.attributes(child), index + 1):
                break

    async def releasedir(self, fh):
        self.handles.pop(fh, None)

    async def fsyncdir(self, fh, datasync):
        node = self.nodes[self.handles[fh]]
        node.durable_children = dict(node.children)

    async def statfs(self, ctx):
        stats = pyfuse3.StatvfsData()
        stats.f_bsize = stats.f_frsize = 4096
        stats.f_blocks = stats.f_bfree = stats.f_bavail = 1 << 22  # 16 GiB
        stats.f_files = stats.f_ffree = stats.f_favail = 1 << 20
        stats.f_namemax = 255
        return stats

    async def access(self, inode, mode, ctx):
        self.node(inode)
        return True

    async def getxattr(self, inode, name, ctx):
        raise pyfuse3.FUSEError(errno.ENODATA)

    async def listxattr(self, inode, ctx):
        return []


def main():
    mountpoint, image = sys.argv[1], sys.argv[2]
    operations = PowerCutFS(image)
    # A parent's thread may have spawned us with these blocked (the mask is inherited).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGUSR1, operations.power_cut)
    options = set(pyfuse3.default_options)
    options.add("fsname=powercut")
    options.discard("default_permissions")
    pyfuse3.init(operations, mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
