#!/usr/bin/perl
# conf2man.pl HEAD CONFIG TAIL OUT: writes OUT, the markdown source of
# keyd.conf(5): HEAD (NAME, SYNOPSIS), then docs/configuration.md made fit
# for a man page, then TAIL (FILES, SEE ALSO). lowdown turns OUT into roff.
#
# configuration.md stays the one source of the settings; this only changes
# its form: its title goes (the page has its own), "##" headings become
# sections and "###" subsections, links keep their text only, and each
# table becomes a list, one entry a row, since a five-column table does not
# fit an 80-column terminal. Code blocks pass through untouched.
use strict;
use warnings;

die "usage: conf2man.pl HEAD CONFIG TAIL OUT\n" unless @ARGV == 4;
my ($head, $config, $tail, $out) = @ARGV;

sub slurp {
	my ($path) = @_;
	open(my $f, '<', $path) or die "conf2man.pl: cannot read $path: $!\n";
	local $/;
	my $s = <$f>;
	close($f);
	return $s;
}

sub cells {
	my ($line) = @_;
	$line =~ s/^\s*\|//;
	$line =~ s/\|\s*$//;
	return map { s/^\s+|\s+$//gr } split(/\|/, $line, -1);
}

my @out;
my ($in_code, $titled, @header) = (0, 0);
for my $line (split(/\n/, slurp($config), -1)) {
	if ($line =~ /^```/) {
		$in_code = !$in_code;
		push(@out, $line);
		next;
	}
	if ($in_code) {
		push(@out, $line);
		next;
	}
	if (!$titled && $line =~ /^# /) {
		$titled = 1;
		next;
	}
	if ($line =~ /^## (\[[^\]]*\])\s*$/) {
		push(@out, "# $1 SETTINGS");
		next;
	}
	if ($line =~ /^## (.*)$/) {
		push(@out, '# ' . uc($1));
		next;
	}
	if ($line =~ s/^### /## /) {
		push(@out, $line);
		next;
	}
	if ($line =~ /^\s*\|/) {
		if (!@header) {
			@header = cells($line);
			next;
		}
		next if $line =~ /^\s*\|[\s|:-]*$/;
		my @c = cells($line);
		my @parts;
		# The last column, the meaning, first; then the others by name.
		push(@parts, $c[-1]) if $header[-1] eq 'meaning' && $c[-1] ne '';
		for my $i (1 .. $#c) {
			next if $c[$i] eq '';
			next if $i == $#c && $header[-1] eq 'meaning';
			push(@parts, "$header[$i]: $c[$i]");
		}
		push(@out, "$c[0]", ':   ' . join('; ', @parts) . '.', '');
		next;
	}
	@header = ();
	push(@out, $line);
}
die "conf2man.pl: $config: a code block is not closed\n" if $in_code;
# A link's text may run over a line break, so links go from the whole.
my $body = join("\n", @out);
$body =~ s/\[([^\]]*)\]\([^)\s]*\)/$1/g;

open(my $f, '>', $out) or die "conf2man.pl: cannot write $out: $!\n";
print $f slurp($head), "\n", $body, "\n", slurp($tail);
close($f) or die "conf2man.pl: cannot write $out: $!\n";
