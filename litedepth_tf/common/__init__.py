"""Shared by every layer: data conventions (constants), atomic file writes, progress bars, depth colour maps and
PNG writing, point clouds from depth (`pointcloud`), and the command-line convention. Imports nothing else from the
package."""
