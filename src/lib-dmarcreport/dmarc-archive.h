#ifndef DMARC_ARCHIVE_H
#define DMARC_ARCHIVE_H

/* raw attachment -> <archive_dir>/YYYY/MM/<safe name>. The name comes from
   the sender: it is reduced to a safe base name, and the file is created
   with O_EXCL so an earlier file is never overwritten. */

/* Reduce an untrusted file name to one safe path component: no directory
   part, no "/" or NUL (also after RFC 2231 decoding), no leading dot, no
   control characters, no device names, at most 200 bytes. Returns fallback
   when nothing usable remains. Allocated from the data stack. */
const char *dmarc_archive_safe_name(const char *filename,
				    const char *fallback);

/* Create a new file for an attachment received at 'when' (UTC decides
   YYYY/MM). Directories are created 0700 and the file 0600. If the name
   exists, "-1", "-2", ... is inserted before the extension. Returns the
   open fd (O_RDWR) and the path relative to archive_dir (data stack).
   Below archive_dir no symlink is followed, here and in the functions
   below: the YYYY and MM directories are opened one by one with
   O_NOFOLLOW, and a link where one should be is an error. */
int dmarc_archive_create(const char *archive_dir, time_t when,
			 const char *filename, int *fd_r,
			 const char **relpath_r, const char **error_r);

/* Open relpath (relative to archive_dir, no "." or ".." components) for
   reading. Returns 1 and the fd, 0 when it does not exist, -1 on error. */
int dmarc_archive_open(const char *archive_dir, const char *relpath,
		       int *fd_r, const char **error_r);
/* Remove relpath: 1 removed, 0 it did not exist, -1 error (also for a
   path that could lead outside archive_dir). */
int dmarc_archive_remove(const char *archive_dir, const char *relpath,
			 const char **error_r);

#endif
