# BM_ConditionalNet (bench/conditional_net.cpp): the speed-up of the conditional network (path 1) over the same
# network with every expert unit computed (path 0) against the width N, one line per configuration, and as
# dashes of the same colour the configuration's multiply-add bound (mac_bound).
# bench/report writes the data (conditional_net.dat: one block per configuration, its title first, then
# N, speed-up, mac_bound, speed-up over the plain MLP, mac_bound_plain) and runs
#   gnuplot -e "datafile='conditional_net.dat'; outfile='conditional_net.png'; heading='...'" bench/conditional_net.gp
set terminal pngcairo size 960,640 font ",10"
set output outfile
set title heading noenhanced
set logscale xy 2
set xrange [900:9400]
set xtics (1024, 2048, 4096, 8192)
set xlabel "N (units of each gated layer, and its input width)"
set ylabel "time of path 0 / time of path 1"
set key top left noenhanced
set grid
stats datafile using 1 nooutput
plot for [i=0:STATS_blocks-1] datafile index i using 1:2 with linespoints lw 2 pt 7 lc i+1 title columnheader(1), \
     for [i=0:STATS_blocks-1] datafile index i using 1:3 with lines dt 2 lw 1.5 lc i+1 notitle, \
     NaN with lines dt 2 lw 1.5 lc "gray40" title "dashes: mac_bound", \
     1 with lines lc "black" lw 0.5 notitle
